"""The local bridge: relays encode jobs from the Space server to a USB encoder on an operator's desk.

    python -m devices.localbridge --server https://space.example:8100 --device-id 7001 \\
        --key-file encoder.key --serial /dev/ttyUSB0 [--baud 115200] [--ca-file site-ca.pem]

It runs on the desk PC, so it needs only the standard library, ``websockets``
and ``pyserial`` (no Django). It connects to ``/ws/encoder/`` over a websocket
(wss:// for an https:// server; ``--ca-file`` trusts a site's own CA), proves it
holds the encoder's device key (the key file holds its 32 hex digits, as the
commissioning shows it), then takes the jobs the server pushes, one at a time,
writes each on the encoder over the serial line (devices/usbserial.py) and
reports the progress and the result. A dropped connection is retried with a
growing, jittered delay; a refused proof (close code 4403) ends the program with
status 2, since retrying with the same key cannot help. docs/usb-encoder.md
describes both protocols.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
import signal
import ssl
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import serial
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from devices import bridgewire
from devices import usbserial as wire

logger = logging.getLogger("localbridge")

ANSWER_SECONDS = 1.0  # the encoder answers a command at once (IDENT, or the first PROGRESS)
SENDS = 3
WRITE_MARGIN_SECONDS = 10.0
IDLE_SECONDS = 0.1
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
EXIT_REFUSED = 2


class EncoderOffline(Exception):
    """The serial port cannot be opened, or the encoder does not answer."""


class SerialEncoder:
    """The host end of the serial protocol: one command at a time, answers matched by SEQ.

    A reader thread cuts what arrives into frames (bad ones are dropped and
    counted in ``decoder.counters``) and hands them to the event loop. A command
    not answered at once, or answered ``checksum``, is sent again, up to
    ``SENDS`` times; a port that fails is closed and opened again for the next command.
    """

    def __init__(self, port: str, baud: int):
        self.port_name = port
        self.baud = baud
        self.decoder = wire.Decoder()
        self.seq = 0
        self.port: serial.Serial | None = None
        self.frames: asyncio.Queue | None = None
        self.lock = asyncio.Lock()

    def _open(self) -> None:
        if self.port is not None:
            return
        try:
            self.port = serial.Serial(self.port_name, self.baud, timeout=0.05)
        except (serial.SerialException, OSError) as error:
            raise EncoderOffline(f"cannot open {self.port_name}: {error}") from error
        self.frames = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(self.port, loop, self.frames), daemon=True).start()

    def close(self) -> None:
        if self.port is not None:
            with contextlib.suppress(Exception):
                self.port.close()
            self.port = None

    def _read(self, port: serial.Serial, loop: asyncio.AbstractEventLoop, frames: asyncio.Queue) -> None:
        quiet_since = time.monotonic()
        while port.is_open:
            try:
                data = port.read(4096)
            except (serial.SerialException, OSError, TypeError):
                # TypeError: pyserial's read on a port closed under it.
                break
            now = time.monotonic()
            if data:
                quiet_since, found = now, self.decoder.feed(data)
            elif self.decoder.buffer and now - quiet_since > IDLE_SECONDS:
                found = self.decoder.idle()
            else:
                continue
            self._hand_over(loop, frames, found)
        self._hand_over(loop, frames, [None])

    @staticmethod
    def _hand_over(loop: asyncio.AbstractEventLoop, frames: asyncio.Queue, found: list) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for them
            for frame in found:
                loop.call_soon_threadsafe(frames.put_nowait, frame)

    async def identify(self) -> str:
        answer = await self.request(wire.Identify(), timeout_s=ANSWER_SECONDS)
        return answer.text if isinstance(answer, wire.Ident) else ""

    async def request(self, message: wire.Message, timeout_s: float, on_progress=None) -> wire.Message:
        """Send ``message`` and return the encoder's final answer (IDENT, OK or ERROR); EncoderOffline if none."""
        async with self.lock:
            self._open()
            self.seq = (self.seq + 1) % 256
            frame = wire.encode(self.seq, message)
            try:
                return await self._exchange(frame, timeout_s, on_progress)
            except (serial.SerialException, OSError) as error:
                self.close()
                raise EncoderOffline(str(error)) from error

    async def cancel(self) -> None:
        if self.port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self.port.write(wire.encode((self.seq + 1) % 256, wire.Cancel()))

    async def _exchange(self, frame: bytes, timeout_s: float, on_progress) -> wire.Message:
        for _ in range(SENDS):
            self.port.write(frame)
            answered, answer = await self._answer(ANSWER_SECONDS)
            if answered and not (isinstance(answer, wire.Error) and answer.error == "checksum"):
                break
        else:
            raise EncoderOffline("the encoder does not answer")
        deadline = time.monotonic() + timeout_s
        while isinstance(answer, wire.Progress):
            if on_progress is not None:
                await on_progress(answer)
            answered, answer = await self._answer(deadline - time.monotonic())
            if not answered:
                return wire.Error("timeout" if self.port is not None else "encoder_offline")
        return answer

    async def _answer(self, timeout: float) -> tuple[bool, wire.Message | None]:
        """The next answer to the command in flight (frames of other SEQs are dropped and counted)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = await asyncio.wait_for(self.frames.get(), left)
            except TimeoutError:
                break
            if frame is None:
                self.close()
                raise EncoderOffline("the serial port closed")
            if frame.message is not None and frame.seq == self.seq:
                return True, frame.message
            if frame.message is not None:  # a damaged frame the decoder has counted already
                self.decoder.count("stale_answer")
        return False, None


def job_result(job: int, answer: wire.Message) -> dict:
    if isinstance(answer, wire.Ok):
        return {"type": "result", "job": job, "ok": True, "uid": answer.uid.hex().upper()}
    error = answer.error if isinstance(answer, wire.Error) else "bad_answer"
    return {"type": "result", "job": job, "ok": False, "error": error}


class LocalBridge:
    def __init__(self, url: str, device_id: int, key: bytes, encoder: SerialEncoder, ssl_context=None):
        self.url = url
        self.device_id = device_id
        self.key = key
        self.encoder = encoder
        self.ssl_context = ssl_context
        self.counters: dict[str, int] = {}

    async def run(self) -> int:
        """Connect, serve, reconnect with backoff; returns the exit status once the server refuses the key."""
        delay = BACKOFF_FIRST
        while True:
            try:
                async with connect(self.url, ssl=self.ssl_context, max_size=2**20, open_timeout=10) as websocket:
                    if await self._authenticate(websocket):
                        delay = BACKOFF_FIRST
                        await self._serve(websocket)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                if code == bridgewire.REFUSED:
                    logger.error("The server refused this bridge: device %s and its key do not match", self.device_id)
                    return EXIT_REFUSED
                logger.warning("Connection to the server closed (%s)", code)
            except (OSError, InvalidHandshake, TimeoutError) as error:
                logger.warning("Cannot reach the server at %s: %s", self.url, error)
            wait = delay * random.uniform(0.8, 1.2)
            logger.info("Reconnecting in %.1f s", wait)
            await asyncio.sleep(wait)
            delay = min(BACKOFF_MAX, delay * 2)

    async def _authenticate(self, websocket) -> bool:
        challenge = json.loads(await websocket.recv())
        if challenge.get("type") != "challenge":
            return False
        try:
            ident = await self.encoder.identify()
        except EncoderOffline as error:
            ident = ""
            logger.warning("The encoder does not answer: %s", error)
        mac = bridgewire.proof(self.key, self.device_id, bytes.fromhex(challenge["challenge"]))
        await websocket.send(json.dumps({"type": "auth", "device_id": self.device_id, "mac": mac, "encoder": ident}))
        welcome = json.loads(await websocket.recv())
        logger.info("Connected to %s as encoder %s (%s)", self.url, welcome.get("device"), ident or "not answering")
        return welcome.get("type") == "welcome"

    async def _serve(self, websocket) -> None:
        job_task: asyncio.Task | None = None
        try:
            async for text in websocket:
                message = self._server_message(text)
                if message is None:
                    continue
                if message["type"] == "cancel":
                    await self.encoder.cancel()
                elif job_task is not None and not job_task.done():
                    await websocket.send(json.dumps(job_result(message["job"], wire.Error("busy"))))
                else:
                    job_task = asyncio.get_running_loop().create_task(self._encode(websocket, message))
        finally:
            if job_task is not None and not job_task.done():
                job_task.cancel()
                await self.encoder.cancel()

    def _server_message(self, text) -> dict | None:
        try:
            message = json.loads(text)
            if message["type"] == "encode":
                message["data"] = base64.b64decode(message["data"], validate=True)
                message["uid"] = bytes.fromhex(message.get("uid", ""))
                int(message["timeout_s"])
            return message if message["type"] in ("encode", "cancel") and type(message["job"]) is int else None
        except (ValueError, KeyError, TypeError, binascii.Error):
            self.counters["bad_message"] = self.counters.get("bad_message", 0) + 1
            logger.warning("Dropped a message from the server that is not a valid job")
            return None

    async def _encode(self, websocket, job: dict) -> None:
        async def progress(answer: wire.Progress) -> None:
            await websocket.send(
                json.dumps({"type": "progress", "job": job["id"], "stage": answer.stage, "percent": answer.percent})
            )

        job["id"] = job["job"]
        timeout_s = max(1, min(wire.MAX_TIMEOUT_S, int(job["timeout_s"])))
        logger.info("Job %s: writing %d bytes", job["id"], len(job["data"]))
        try:
            write = wire.Write(job["data"], timeout_s, job["uid"])
            answer = await self.encoder.request(write, timeout_s + WRITE_MARGIN_SECONDS, progress)
        except EncoderOffline as error:
            logger.warning("Job %s: %s", job["id"], error)
            answer = wire.Error("encoder_offline")
        except ValueError as error:  # data or UID out of the protocol's range
            logger.warning("Job %s: %s", job["id"], error)
            answer = wire.Error("write_failed")
        logger.info("Job %s: %s", job["id"], answer)
        await websocket.send(json.dumps(job_result(job["id"], answer)))


def websocket_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not a server address: {server!r} (e.g. https://space.example:8100)")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + bridgewire.PATH, "", ""))


def read_key(path: str) -> bytes:
    try:
        key = bytes.fromhex(Path(path).read_text().strip())
    except (OSError, ValueError) as error:
        raise SystemExit(f"Cannot read the device key from {path}: {error}") from error
    if len(key) != 16:
        raise SystemExit(f"The device key in {path} is {len(key)} bytes; it must be 16 (32 hex digits).")
    return key


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Relay encode jobs from a Space server to a USB encoder.")
    parser.add_argument("--server", required=True, type=websocket_url, help="e.g. https://space.example:8100")
    parser.add_argument("--device-id", required=True, type=int, help="The USB encoder's device id in Space.")
    parser.add_argument("--key-file", required=True, help="A file holding the encoder's device key (32 hex digits).")
    parser.add_argument("--serial", required=True, help="The encoder's serial port, e.g. /dev/ttyUSB0 or COM3.")
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--ca-file", help="Trust this CA (PEM) for the server's certificate, e.g. a site's own CA.")
    return parser.parse_args(argv)


async def serve(args) -> int:
    context = None
    if args.server.startswith("wss:"):
        context = ssl.create_default_context(cafile=args.ca_file)
    else:
        logger.warning("Plain http: the key is never sent, but card data crosses the network unencrypted")
    encoder = SerialEncoder(args.serial, args.baud)
    bridge = LocalBridge(args.server, args.device_id, read_key(args.key_file), encoder, context)
    task = asyncio.get_running_loop().create_task(bridge.run())
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 0
    finally:
        encoder.close()
        logger.info("Stopped; dropped: serial %s, server %s", encoder.decoder.counters, bridge.counters)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = parse_args(argv)
    try:
        sys.exit(asyncio.run(serve(args)))
    except InvalidURI as error:
        raise SystemExit(str(error)) from error


if __name__ == "__main__":
    main()
