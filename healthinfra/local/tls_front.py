"""A TLS front for the embedded PostgreSQL, whose wheel is built without OpenSSL.

The server listens only on its private unix socket (mode 0700). This daemon owns
the TCP port on 127.0.0.1 and speaks the start of PostgreSQL's protocol: a client
must send SSLRequest, gets `S`, completes a TLS handshake (TLS 1.2 or newer), and
only then is its connection piped to the server's socket, where PostgreSQL checks
its SCRAM password as usual. A client that starts without TLS gets PostgreSQL's
own error message for it and is closed. So `sslmode=require` works unchanged, and
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
        except Exception:  # already gone
            pass


async def handle(reader, writer, unix_socket: str, context: ssl.SSLContext) -> None:
    try:
        while True:
            header = await reader.readexactly(8)
            length, code = struct.unpack("!II", header)
            if length == 8 and code == GSSENC_REQUEST:
                writer.write(b"N")  # no GSSAPI encryption here; the client then asks for SSL
                await writer.drain()
                continue
            break
        if length != 8 or code != SSL_REQUEST:
            writer.write(error_response("this server accepts only TLS connections; connect with sslmode=require"))
            await writer.drain()
            writer.close()
            return
        writer.write(b"S")
        await writer.drain()
        await writer.start_tls(context)
        server_reader, server_writer = await asyncio.open_unix_connection(unix_socket)
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
        writer.close()
        return
    await asyncio.gather(_pipe(reader, server_writer), _pipe(server_reader, writer))


async def serve(host: str, port: int, unix_socket: str, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: handle(r, w, unix_socket, context), host, port)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    host, port, unix_socket, cert, key = argv
    asyncio.run(serve(host, int(port), unix_socket, cert, key))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
