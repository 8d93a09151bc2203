"""A loop that never reaches a step boundary after a signal (a long evaluation, say).

usage: python _stuck.py STORE RUN_ID
"""

from __future__ import annotations

import sys
import time

from api import sync
from api._frameworks import StepBoundaryPreemption

run = sync.init(project="p", id=sys.argv[2], resume="allow", store=sys.argv[1])
StepBoundaryPreemption(run, grace=1.0).install()
run.log({"loss": 1.0})
print("ready", flush=True)
while True:
    time.sleep(0.05)
