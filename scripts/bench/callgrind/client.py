"""HTTP/1.1 keep-alive client for callgrind.sh: N requests over C connections,
each connection one request at a time, so the server's instructions per
request do not depend on how fast the client is.

client.py HOST:PORT PATH TOKENFILE validate|forward-auth N C
"""
import socket
import sys
import threading

hostport, path, tokfile, proto, n, conns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
host, port = hostport.rsplit(':', 1)
tokens = open(tokfile).read().split()


def request(tok):
    if proto == 'forward-auth':
        # nginx auth_request's subrequest, as scripts/bench/load sends it.
        return ('GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n'
                'X-Original-URI: /reports\r\nX-Original-Method: GET\r\n\r\n' % (path, hostport, tok)).encode()
    body = '{"token":"%s"}' % tok
    return ('POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n'
            'Content-Length: %d\r\n\r\n%s' % (path, hostport, len(body), body)).encode()


reqs = [request(t) for t in tokens]
statuses = {}
lock = threading.Lock()


def run(k, count):
    s = socket.create_connection((host, int(port)))
    f = s.makefile('rb')
    for i in range(count):
        s.sendall(reqs[(k * 7 + i) % len(reqs)])
        code = f.readline().split()[1].decode()
        length = 0
        while True:
            h = f.readline()
            if h in (b'\r\n', b'\n', b''):
                break
            if h.lower().startswith(b'content-length:'):
                length = int(h[15:])
        f.read(length)
        with lock:
            statuses[code] = statuses.get(code, 0) + 1
    s.close()


threads = [threading.Thread(target=run, args=(k, n // conns)) for k in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print('statuses', statuses, file=sys.stderr)
