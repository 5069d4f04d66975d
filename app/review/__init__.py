"""Review console logic: annotator agreement and dataset snapshot export. Plain functions, no I/O."""
