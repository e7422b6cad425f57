"""Report: the numbers, plots and HTML page that describe an audit run, and its collapse signals."""
