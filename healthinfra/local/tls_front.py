"""A TLS front for the embedded PostgreSQL, whose wheel is built without OpenSSL.

The server listens only on its private unix socket (mode 0700). This daemon owns
the TCP port on 127.0.0.1 and speaks the start of PostgreSQL's protocol: a client
must send SSLRequest, gets `S`, completes a TLS handshake (TLS 1.2 or newer), and
only then is its connection piped to the server's socket, where PostgreSQL checks
its SCRAM password as usual. A client that starts without TLS gets PostgreSQL's
own error message for it and is closed. A CancelRequest (a pid and a key, no
data) is passed on as it comes, with or without TLS, as PostgreSQL does.
Not supported: direct TLS negotiation (libpq's sslnegotiation=direct). So `sslmode=require` works unchanged, and
nothing reaches the database unencrypted over the network.

Run: python -m healthinfra.local.tls_front HOST PORT UNIX_SOCKET CERT KEY
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
MAX_CONNECTIONS = 256


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


async def handle(reader, writer, unix_socket: str, context: ssl.SSLContext, slots: asyncio.Semaphore) -> None:
    if slots.locked():
        writer.write(error_response("too many connections to the TLS front; try again shortly"))
        writer.close()
        return
    async with slots:
        await _handle(reader, writer, unix_socket, context)


async def _handle(reader, writer, unix_socket: str, context: ssl.SSLContext) -> None:
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
            writer.write(error_response("this server accepts only TLS connections; connect with sslmode=require"))
            await writer.drain()
            writer.close()
            return
        writer.write(b"S")
        await writer.drain()
        await asyncio.wait_for(writer.start_tls(context), HANDSHAKE_SECONDS)
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(unix_socket)
        except OSError:
            writer.write(error_response("the database server is not running; start it with `invoke local.up`"))
            await writer.drain()
            writer.close()
            return
    except (TimeoutError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
        writer.close()
        return
    await asyncio.gather(_pipe(reader, server_writer), _pipe(server_reader, writer))


async def serve(host: str, port: int, unix_socket: str, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    server = await asyncio.start_server(lambda r, w: handle(r, w, unix_socket, context, slots), host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    host, port, unix_socket, cert, key = argv
    asyncio.run(serve(host, int(port), unix_socket, cert, key))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
