"""A TLS front for the embedded PostgreSQL, whose wheel is built without OpenSSL.

The server listens only on its private unix socket (mode 0700). This daemon owns
the TCP port on 127.0.0.1 and speaks the start of PostgreSQL's protocol: a client
must send SSLRequest, gets `S`, completes a TLS handshake (TLS 1.2 or newer), and
only then is its connection piped to the server's socket, where PostgreSQL checks
its SCRAM password as usual. A client that starts without TLS gets PostgreSQL's
own error message for it and is closed. A CancelRequest (a pid and a key, no
data) is passed on as it comes, with or without TLS, as PostgreSQL does.
Not supported: direct TLS negotiation (libpq's sslnegotiation=direct). So `sslmode=verify-full` (against
the local certificate) works unchanged, and nothing reaches the database unencrypted over the network.

No superuser over the network: the front reads the client's start-up message and refuses the roles
it is told to (`--refuse ROLE`: the admin, who connects only on the socket, with its password);
then, until the server says the session is ready, it passes on only the client's authentication
messages and watches the server's `is_superuser` report: a session the server reports as a
superuser is closed before the client can send a single query (`--pass-superuser ROLE` lets a
named one through). After that it is a plain pipe.

Run: python -m healthinfra.local.tls_front HOST PORT UNIX_SOCKET CERT KEY [--refuse ROLE]... [--pass-superuser ROLE]...
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import sys

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102  # carries no secret data: a pid and a key; JDBC sends it without TLS
HANDSHAKE_SECONDS = 10  # a client that neither speaks nor finishes TLS in time is dropped
STARTUP_SECONDS = 30  # from TLS to the server's ReadyForQuery (a SCRAM exchange)
MAX_CONNECTIONS = 256
MAX_STARTUP_PACKET = 10000  # PostgreSQL's own limit
PASSWORD_MESSAGE = b"p"  # PasswordMessage, SASLInitialResponse, SASLResponse: all a client sends before ready


class Policy:
    """Who the front lets through: roles refused by name, superusers it may pass."""

    def __init__(self, refused: frozenset[str] = frozenset(), superusers: frozenset[str] = frozenset()):
        self.refused = refused
        self.superusers = superusers


def startup_parameters(body: bytes) -> dict[str, str]:
    """The key/value pairs of a StartupMessage body (after its length and protocol version)."""
    fields = body.split(b"\0")
    pairs = {}
    for key, value in zip(fields[0::2], fields[1::2], strict=False):
        if not key:
            break
        pairs[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return pairs


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One typed protocol message: (type byte, the whole message as it came)."""
    head = await reader.readexactly(5)
    (length,) = struct.unpack("!I", head[1:])
    if length < 4 or length > 1 << 24:
        raise ConnectionError("a malformed protocol message")
    return head[:1], head + await reader.readexactly(length - 4)


def error_response(message: str) -> bytes:
    """A PostgreSQL ErrorResponse (FATAL, SQLSTATE 28000) a client prints as it would the server's."""
    fields = b"SFATAL\0VFATAL\0C28000\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: S110 - the peer is already gone; nothing is left to close
            pass


async def handle(
    reader, writer, unix_socket: str, context: ssl.SSLContext, slots: asyncio.Semaphore, policy: Policy
) -> None:
    if slots.locked():
        writer.write(error_response("too many connections to the TLS front; try again shortly"))
        writer.close()
        return
    async with slots:
        await _handle(reader, writer, unix_socket, context, policy)


async def _refuse(writer, message: str, *others) -> None:
    try:
        writer.write(error_response(message))
        await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    for stream in (writer, *others):
        try:
            stream.close()
        except Exception:  # noqa: S110 - already gone
            pass


async def _startup(reader, writer, server_reader, server_writer, user: str, policy: Policy) -> bool:
    """Relay authentication until the server says the session is ready (ReadyForQuery), then
    hold that message back: True if the session may go on (the message then sent), False (both
    ends closed, the client told why) for a superuser not allowed, or a client that sends
    anything but authentication before it is ready."""
    superuser = False

    async def from_client() -> None:
        while True:
            kind, message = await read_message(reader)
            if kind != PASSWORD_MESSAGE:
                raise PermissionError("only authentication may come before the session is ready")
            server_writer.write(message)
            await server_writer.drain()

    client = asyncio.ensure_future(from_client())
    try:
        while True:
            server = asyncio.ensure_future(read_message(server_reader))
            await asyncio.wait({server, client}, return_when=asyncio.FIRST_COMPLETED)
            if client.done() and not server.done():
                server.cancel()
                client.result()  # raises what the client did wrong
            kind, message = server.result()
            if kind == b"S":
                name, _, rest = message[5:].partition(b"\0")
                if name == b"is_superuser" and rest.split(b"\0", 1)[0] == b"on":
                    superuser = True
            if kind == b"Z":
                break
            writer.write(message)
            await writer.drain()
            if kind == b"E":  # the server refused (a wrong password): the client hears it as it is
                return False
    except PermissionError as exc:
        await _refuse(writer, str(exc), server_writer)
        return False
    finally:
        client.cancel()
    if superuser and user not in policy.superusers:
        await _refuse(writer, f"role `{user}` is a superuser, which may not connect over the network", server_writer)
        return False
    writer.write(message)
    await writer.drain()
    return True


async def _handle(reader, writer, unix_socket: str, context: ssl.SSLContext, policy: Policy) -> None:
    length = code = 0
    try:
        while True:
            header = await asyncio.wait_for(reader.readexactly(8), HANDSHAKE_SECONDS)
            length, code = struct.unpack("!II", header)
            if length == 8 and code == GSSENC_REQUEST:
                writer.write(b"N")  # no GSSAPI encryption here; the client then asks for SSL
                await writer.drain()
                continue
            break
        if length == 16 and code == CANCEL_REQUEST:
            body = await asyncio.wait_for(reader.readexactly(8), HANDSHAKE_SECONDS)
            _, server_writer = await asyncio.open_unix_connection(unix_socket)
            server_writer.write(header + body)  # the server answers a cancel by closing
            await server_writer.drain()
            server_writer.close()
            writer.close()
            return
        if length != 8 or code != SSL_REQUEST:
            writer.write(error_response("this server accepts only TLS connections; connect with sslmode=verify-full"))
            await writer.drain()
            writer.close()
            return
        writer.write(b"S")
        await writer.drain()
        await asyncio.wait_for(writer.start_tls(context), HANDSHAKE_SECONDS)
        head = await asyncio.wait_for(reader.readexactly(8), HANDSHAKE_SECONDS)
        length, code = struct.unpack("!II", head)
        if length < 8 or length > MAX_STARTUP_PACKET:
            await _refuse(writer, "invalid start-up packet length")
            return
        body = await asyncio.wait_for(reader.readexactly(length - 8), HANDSHAKE_SECONDS)
        if length == 16 and code == CANCEL_REQUEST:  # a cancel over TLS (libpq 17 sends them so)
            _, server_writer = await asyncio.open_unix_connection(unix_socket)
            server_writer.write(head + body)
            await server_writer.drain()
            server_writer.close()
            writer.close()
            return
        if code >> 16 != 3:
            await _refuse(writer, f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: 3.x is")
            return
        user = startup_parameters(body).get("user", "")
        if user in policy.refused:
            await _refuse(
                writer,
                f"role `{user}` may not connect over the network: it connects only on the server's own socket",
            )
            return
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(unix_socket)
        except OSError:
            await _refuse(writer, "the database server is not running; start it with `invoke local.up`")
            return
        server_writer.write(head + body)
        await server_writer.drain()
        if not await asyncio.wait_for(
            _startup(reader, writer, server_reader, server_writer, user, policy), STARTUP_SECONDS
        ):
            return
    except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
        writer.close()
        return
    await asyncio.gather(_pipe(reader, server_writer), _pipe(server_reader, writer))


async def serve(host: str, port: int, unix_socket: str, cert: str, key: str, policy: Policy) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    server = await asyncio.start_server(lambda r, w: handle(r, w, unix_socket, context, slots, policy), host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m healthinfra.local.tls_front")
    for name in ("host", "port", "unix_socket", "cert", "key"):
        parser.add_argument(name)
    parser.add_argument("--refuse", action="append", default=[], help="a role refused by name")
    parser.add_argument("--pass-superuser", action="append", default=[], help="a superuser let through")
    args = parser.parse_args(argv)
    policy = Policy(frozenset(args.refuse), frozenset(args.pass_superuser))
    asyncio.run(serve(args.host, int(args.port), args.unix_socket, args.cert, args.key, policy))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
