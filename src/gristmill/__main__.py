from gristmill.stopping import catch_early_stop

catch_early_stop()  # before the heavier imports: a SIGTERM meanwhile is honoured, not fatal

from gristmill.cli import main

main()
