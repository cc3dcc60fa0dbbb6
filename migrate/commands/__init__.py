"""One module per ``bhyvesnap`` command; each is thin: parse, call the API, render."""
