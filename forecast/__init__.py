"""The one forecast path: (coin, day, basis) -> the answer every interface gives."""
