"""The ``dhvc`` command line: its Typer app, its tables and the console-script launcher."""
