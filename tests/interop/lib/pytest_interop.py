"""pytest plugin used by pyamqp.sh and kombu.sh (loaded with -p pytest_interop).

* Records one "OUTCOME<TAB>NODEID" line per test report in $INTEROP_RESULTS
  (written as the run goes, so a run killed by its time limit keeps what it had).
* Registers the upstream suites' custom marks (env, flaky) so they do not warn;
  pytest-rerunfailures is deliberately not installed: no reruns, flakiness shows.
* If AMQP_URL carries credentials/vhost other than guest:guest@/ (the upstream
  suites hard-code those defaults), substitutes them in amqp.Connection.
"""
import os

import pytest

# py-amqp's t/integration/test_integration.py drives amqp.Connection over a mocked
# transport and asserts the guest/guest Start-Ok frame: never substitute there.
_MOCKED_FILES = {"test_integration.py"}
_substitute = True


def _patch_credentials():
    user = os.environ.get("AMQP_USER", "guest")
    password = os.environ.get("AMQP_PASS", "guest")
    vhost = os.environ.get("AMQP_VHOST", "/")
    if (user, password, vhost) == ("guest", "guest", "/"):
        return
    import amqp

    orig = amqp.Connection.__init__

    def __init__(self, host="localhost:5672", userid="guest", password_="guest", *args, **kw):
        if "password" in kw:
            password_ = kw.pop("password")
        if not _substitute:
            return orig(self, host, userid, password_, *args, **kw)
        if userid in (None, "guest"):
            userid = user
        if password_ in (None, "guest"):
            password_ = password
        if kw.get("virtual_host") in (None, "/"):
            kw["virtual_host"] = vhost
        return orig(self, host, userid, password_, *args, **kw)

    amqp.Connection.__init__ = __init__


def _record(outcome, nodeid):
    path = os.environ.get("INTEROP_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(f"{outcome}\t{nodeid}\n")


def pytest_configure(config):
    config.addinivalue_line("markers", "env(name): upstream environment mark (ignored)")
    config.addinivalue_line("markers", "flaky(**kw): upstream rerun mark (reruns disabled here)")
    _patch_credentials()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _substitute
    _substitute = os.path.basename(str(item.fspath)) not in _MOCKED_FILES


def pytest_collectreport(report):
    if report.failed:
        _record("fail", f"{report.nodeid} (collection)")


def pytest_runtest_logreport(report):
    if report.when == "call":
        _record({"passed": "pass", "failed": "fail"}.get(report.outcome, "skip"), report.nodeid)
    elif report.failed:  # error in setup or teardown
        _record("fail", report.nodeid)
    elif report.when == "setup" and report.skipped:
        _record("skip", report.nodeid)
