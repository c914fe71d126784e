#!/usr/bin/env python3
"""Run a test command; if it fails only because Open MPI 5's launcher could not start (its
PMIx server's listener thread, a failure seen under load on this machine before any rank
runs, so nothing of the job happened), run it once more. Used by the ULFM flavour's
registrations (tests/CMakeLists.txt); any other failure is the test's result."""
import os
import shutil
import subprocess
import sys

SIGN = "The PMIx server's listener thread failed to start"

for attempt in (1, 2):
    p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace")
    sys.stdout.write(p.stdout)
    sys.stdout.flush()
    if p.returncode == 0 or SIGN not in p.stdout or attempt == 2:
        sys.exit(p.returncode)
    print("# Open MPI 5's launcher failed to start (PMIx listener): running the test again",
          flush=True)
    tmp = os.environ.get("LOOM_TMP")  # the test's private scratch directory, emptied
    for name in os.listdir(tmp) if tmp and os.path.isdir(tmp) else []:
        path = os.path.join(tmp, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
