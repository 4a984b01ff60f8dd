"""Operations: the daily job, the append-only forecast ledger, its live track record and webhook alerts."""
