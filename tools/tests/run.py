"""Runs the simulator's tests as `python3 -m unittest discover -s tools/tests` does, then names
every skipped test with its reason and ends with the one line tools/test reads:

    python tests: N passed, N failed, N skipped

A skipped test is not a pass: it is counted apart. Passed counts the tests that ran to success
(and expected failures); failed counts failures, errors (a test, a module that did not import,
a setUpClass that raised) and unexpected successes. Exit status 0 only when nothing failed.

Run from the repository root: python3 tools/tests/run.py
"""

import os
import sys
import unittest


class CountingResult(unittest.TextTestResult):
    """Counts passes as they happen, so nothing is a pass by subtraction."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed += 1


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    suite = unittest.defaultTestLoader.discover(here, top_level_dir=here)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=1, resultclass=CountingResult)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    for test, reason in result.skipped:
        print(f"skipped: {test.id()}: {reason}")
    print(f"python tests: {result.passed} passed, {failed} failed, {len(result.skipped)} skipped",
          flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
