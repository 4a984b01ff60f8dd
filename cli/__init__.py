"""The command line, the roof: it parses arguments, calls the floors below and prints; no logic of its own."""
