#!/usr/bin/env python3
"""mysql8_auth_server.py - MySQL 8's caching_sha2_password, in front of MariaDB.

No MySQL 8 server is packaged for Debian, so this test server speaks the
server side of MySQL's authentication exchange itself (standard library
plus the openssl command) and, once a client is in, relays the session
to a real MariaDB on loopback. A client therefore logs in exactly as it
would to MySQL 8.4 with its default plugin, then runs real statements.

The exchange, as MySQL 8 does it (sql/auth/sha2_password.cc):
  greeting     plugin "caching_sha2_password", 20-byte nonce
  client       XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) || nonce))
  server       0x01 0x03 "fast auth ok" if the user is in the cache and the
               scramble matches, else 0x01 0x04 "perform full auth"
  client       (no TLS) 0x02: "send me your RSA public key"
  server       0x01 + PEM public key
  client       RSA-OAEP(password || NUL, XOR-ed with the nonce)
  server       decrypts and compares; success puts the user in the cache
then OK (relayed from MariaDB) or ERR 1045.

  mysql8_auth_server.py --backend 127.0.0.1:PORT --backend-user U:P \\
      --user NAME:PASSWORD --key key.pem --port-file F [--switch-to PLUGIN]

--switch-to answers every login with an AuthSwitchRequest to PLUGIN
(e.g. "dialog"), to see how a client handles a plugin it does not have.
Each authentication decision is one line on stdout ("full-auth ok user=..."),
which the test reads. Listens on 127.0.0.1 only; the chosen port goes to
--port-file. Test-only: the user's password is a command-line argument.
"""
import argparse
import hashlib
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading

CLIENT_MYSQL = 1
CLIENT_CONNECT_WITH_DB = 8
CLIENT_COMPRESS = 32
CLIENT_PROTOCOL_41 = 512
CLIENT_SSL = 2048
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC = 1 << 21
CLIENT_ZSTD = 1 << 26

SHA2 = "caching_sha2_password"
NATIVE = "mysql_native_password"

log_lock = threading.Lock()


def log(msg):
    with log_lock:
        print(msg, flush=True)


class Closed(Exception):
    pass


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Closed()
        buf += chunk
    return buf


def read_packet(sock):
    head = recv_exact(sock, 4)
    length = head[0] | head[1] << 8 | head[2] << 16
    return head[3], recv_exact(sock, length)


def write_packet(sock, seq, payload):
    sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)


def cstring(data, pos):
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


def lenenc_int(data, pos):
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[pos + 1:pos + 1 + size], "little"), pos + 1 + size


def lenenc_bytes(value):
    n = len(value)
    if n < 0xFB:
        return bytes([n]) + value
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little") + value
    return b"\xfd" + n.to_bytes(3, "little") + value


def err_packet(code, state, message):
    return b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + message.encode()


def nonce20():
    # Printable and NUL-free, as MySQL's generate_user_salt() makes them.
    return bytes(0x21 + secrets.randbelow(0x5E) for _ in range(20))


def sha256(b):
    return hashlib.sha256(b).digest()


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def sha2_scramble(password, nonce):
    d1 = sha256(password)
    return xor(d1, sha256(sha256(d1) + nonce))


def native_scramble(password, nonce):
    s1 = hashlib.sha1(password).digest()
    return xor(s1, hashlib.sha1(nonce + hashlib.sha1(s1).digest()).digest())


def parse_greeting(p):
    """The parts of a HandshakeV10 the relay mirrors."""
    version, pos = cstring(p, 1)
    conn_id = p[pos:pos + 4]
    part1 = p[pos + 4:pos + 12]
    pos += 13
    caps = struct.unpack_from("<H", p, pos)[0]
    charset = p[pos + 2]
    status = p[pos + 3:pos + 5]
    caps |= struct.unpack_from("<H", p, pos + 5)[0] << 16
    auth_len = p[pos + 7]
    ext = p[pos + 14:pos + 18]  # MariaDB's extended capabilities
    pos += 18
    part2_len = max(13, auth_len - 8)
    nonce = part1 + p[pos:pos + part2_len].rstrip(b"\0")
    pos += part2_len
    plugin = cstring(p, pos)[0].decode() if caps & CLIENT_PLUGIN_AUTH else NATIVE
    return dict(version=version, conn_id=conn_id, caps=caps, charset=charset,
                status=status, ext=ext, nonce=nonce, plugin=plugin)


def build_greeting(g, caps, nonce, plugin):
    return (b"\x0a" + g["version"] + b"\0" + g["conn_id"] + nonce[:8] + b"\0"
            + struct.pack("<H", caps & 0xFFFF) + bytes([g["charset"]]) + g["status"]
            + struct.pack("<H", caps >> 16) + bytes([len(nonce) + 1]) + b"\0" * 6 + g["ext"]
            + nonce[8:] + b"\0" + plugin.encode() + b"\0")


def parse_response(p):
    caps, max_packet, charset = struct.unpack_from("<IIB", p, 0)
    ext = p[28:32]
    user, pos = cstring(p, 32)
    if caps & CLIENT_PLUGIN_AUTH_LENENC:
        n, pos = lenenc_int(p, pos)
    elif caps & CLIENT_SECURE_CONNECTION:
        n, pos = p[pos], pos + 1
    else:
        n = p.index(b"\0", pos) - pos
    auth = p[pos:pos + n]
    pos += n
    db = None
    if caps & CLIENT_CONNECT_WITH_DB and pos < len(p):
        db, pos = cstring(p, pos)
    plugin = NATIVE
    if caps & CLIENT_PLUGIN_AUTH and pos < len(p):
        plugin = cstring(p, pos)[0].decode()
    return dict(caps=caps, max_packet=max_packet, charset=charset, ext=ext,
                user=user.decode(), auth=auth, db=db, plugin=plugin)


def build_response(r, caps, user, auth, plugin):
    if caps & CLIENT_PLUGIN_AUTH_LENENC:
        auth_field = lenenc_bytes(auth)
    else:
        auth_field = bytes([len(auth)]) + auth
    out = (struct.pack("<IIB", caps, r["max_packet"], r["charset"]) + b"\0" * 19 + r["ext"]
           + user.encode() + b"\0" + auth_field)
    if caps & CLIENT_CONNECT_WITH_DB:
        out += (r["db"] or b"") + b"\0"
    return out + plugin.encode() + b"\0"


class Server:
    def __init__(self, args):
        self.backend = args.backend.rsplit(":", 1)
        self.backend_user, self.backend_password = args.backend_user.split(":", 1)
        self.user, password = args.user.split(":", 1)
        self.password = password.encode()
        self.key = args.key
        self.switch_to = args.switch_to
        with open(args.key + ".pub", "rb") as f:
            self.public_pem = f.read()
        self.cache = set()  # users whose full authentication succeeded
        self.lock = threading.Lock()

    def decrypt(self, blob):
        out = subprocess.run(
            ["openssl", "pkeyutl", "-decrypt", "-inkey", self.key, "-pkeyopt", "rsa_padding_mode:oaep"],
            input=blob, capture_output=True)
        return out.stdout if out.returncode == 0 else None

    def authenticate(self, client, seq, r, nonce):
        """The server side of caching_sha2_password. Returns (ok, seq)."""
        auth = r["auth"]
        if r["plugin"] != SHA2:
            write_packet(client, seq + 1, b"\xfe" + SHA2.encode() + b"\0" + nonce + b"\0")
            seq, auth = read_packet(client)
        user_ok = r["user"] == self.user
        if user_ok and auth == sha2_scramble(self.password, nonce):
            with self.lock:
                cached = r["user"] in self.cache
            if cached:
                write_packet(client, seq + 1, b"\x01\x03")
                log(f"fast-auth ok user={r['user']}")
                return True, seq + 1
        # Not cached (or a wrong scramble): the full exchange.
        write_packet(client, seq + 1, b"\x01\x04")
        seq, packet = read_packet(client)
        if packet == b"\x02":
            write_packet(client, seq + 1, b"\x01" + self.public_pem)
            seq, packet = read_packet(client)
        # There is no TLS here, so like MySQL the reply must be RSA-encrypted;
        # a cleartext password (what a client sends over TLS) does not decrypt.
        plain = self.decrypt(packet)
        how = "rsa" if plain is not None else "not-rsa"
        password = xor(plain, (nonce * 32)[:len(plain)]) if plain is not None else None
        ok = user_ok and password is not None and password.rstrip(b"\0") == self.password
        if ok:
            with self.lock:
                self.cache.add(r["user"])
        log(f"full-auth {'ok' if ok else 'denied'} user={r['user']} via={how}")
        return ok, seq

    def backend_login(self, r, caps):
        """Log in to MariaDB with mysql_native_password and the client's capabilities."""
        sock = socket.create_connection((self.backend[0], int(self.backend[1])))
        _, p = read_packet(sock)
        g = parse_greeting(p)
        caps = (caps & g["caps"]) | CLIENT_PLUGIN_AUTH | CLIENT_SECURE_CONNECTION | CLIENT_PROTOCOL_41
        caps &= ~(CLIENT_CONNECT_ATTRS | CLIENT_SSL | CLIENT_COMPRESS | CLIENT_ZSTD)
        pw = self.backend_password.encode()
        write_packet(sock, 1, build_response(r, caps, self.backend_user,
                                             native_scramble(pw, g["nonce"]), NATIVE))
        seq, p = read_packet(sock)
        while p[:1] == b"\xfe":  # AuthSwitchRequest: answer only for native
            plugin, pos = cstring(p, 1)
            if plugin.decode() != NATIVE:
                raise RuntimeError(f"backend asked for {plugin!r}")
            write_packet(sock, seq + 1, native_scramble(pw, p[pos:pos + 20]))
            seq, p = read_packet(sock)
        return sock, p

    def handle(self, client):
        backend = None
        try:
            # Mirror the real server's greeting, with our nonce and plugin.
            probe = socket.create_connection((self.backend[0], int(self.backend[1])))
            _, p = read_packet(probe)
            probe.close()
            g = parse_greeting(p)
            caps = (g["caps"] & ~(CLIENT_SSL | CLIENT_COMPRESS | CLIENT_ZSTD)) | CLIENT_PLUGIN_AUTH | CLIENT_SECURE_CONNECTION
            nonce = nonce20()
            write_packet(client, 0, build_greeting(g, caps, nonce, SHA2))
            seq, p = read_packet(client)
            if len(p) < 32:
                log("refused: SSL request or a pre-4.1 client")
                return
            r = parse_response(p)
            if self.switch_to:
                write_packet(client, seq + 1, b"\xfe" + self.switch_to.encode() + b"\0" + nonce + b"\0")
                try:
                    seq, p = read_packet(client)
                except Closed:
                    log(f"switch-to {self.switch_to}: client closed the connection")
                    return
                # Whatever it sent, it is not the plugin's answer: refuse, as a server would.
                log(f"switch-to {self.switch_to}: client answered {len(p)} bytes; denied")
                write_packet(client, seq + 1, err_packet(
                    1045, "28000", f"Access denied for user '{r['user']}'@'localhost'"))
                return
            ok, seq = self.authenticate(client, seq, r, nonce)
            if not ok:
                write_packet(client, seq + 1, err_packet(
                    1045, "28000", f"Access denied for user '{r['user']}'@'localhost' (using password: YES)"))
                return
            backend, reply = self.backend_login(r, r["caps"])
            write_packet(client, seq + 1, reply)
            if reply[:1] != b"\x00":
                return
            relay(client, backend)
        except Closed:
            pass
        finally:
            client.close()
            if backend:
                backend.close()


def relay(a, b):
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", required=True, help="HOST:PORT of the MariaDB to relay to")
    ap.add_argument("--backend-user", required=True, help="USER:PASSWORD (mysql_native_password)")
    ap.add_argument("--user", required=True, help="NAME:PASSWORD clients must present")
    ap.add_argument("--key", required=True, help="RSA private key (PEM); KEY.pub holds its public key")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--switch-to", help="answer every login with an AuthSwitchRequest to this plugin")
    args = ap.parse_args()
    server = Server(args)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{lsock.getsockname()[1]}\n")
    os.rename(tmp, args.port_file)
    while True:
        client, _ = lsock.accept()
        threading.Thread(target=server.handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
