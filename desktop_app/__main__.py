import sys

from desktop_app.core.child import run_child_if_asked

if not run_child_if_asked(sys.argv):
    from desktop_app.cli import main

    raise SystemExit(main())
