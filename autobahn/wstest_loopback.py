# Python 2: runs wstest (autobahntestsuite) with every TCP listener it opens
# bound to 127.0.0.1 instead of all interfaces (wstest has no option for
# that), and prints each listener's port as "wstest_loopback: listening on
# 127.0.0.1:PORT" so that a spec with port 0 can be used (autobahn/run.sh
# waits for that line). Usage: python wstest_loopback.py WSTEST-ARGS...
import sys

from twisted.internet import reactor

_listen_tcp = reactor.listenTCP


def _listen_tcp_loopback(port, factory, backlog=50, interface=''):
    listener = _listen_tcp(port, factory, backlog, '127.0.0.1')
    sys.stdout.write("wstest_loopback: listening on 127.0.0.1:%d\n"
                     % listener.getHost().port)
    sys.stdout.flush()
    return listener


reactor.listenTCP = _listen_tcp_loopback

from autobahntestsuite import wstest  # noqa: E402 (after the patch)

sys.argv[0] = "wstest"
wstest.run()
