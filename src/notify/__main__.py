from notify.entrypoints.cli import run

run()
