"""The SHIP codec: requests and answers as XML, and the TCP framing ``STP/00/<length>/``. Pure: no sockets, no ORM.

The project's reading of the protocol is in docs/ship-in-space.md. In short:

- a request is ``<RequestCall><RequestName>…</RequestName><Params>…</Params></RequestCall>``; an answer is
  ``<RequestResponse><RequestName>…</RequestName><Params>…</Params></RequestResponse>``, or, for a
  failure, ``<RequestResponse><RequestName>…</RequestName><Exception><Code>…</Code><Message>…</Message>
  </Exception></RequestResponse>`` (the shape public client code expects: the exception beside, not
  inside, the Params);
- element text is trimmed (public clients send ``<RequestName> SaltoDBUserList.Read </RequestName>``);
  attributes are ignored;
- the XML is parsed with expat refusing any document type declaration, so no entity can be declared:
  no external entities (XXE), no entity expansion (billion laughs). Documents are limited in size and
  depth.

Everything that goes wrong raises :class:`ShipError` with a SHIP exception code; nothing else escapes.
"""

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

CONTENT_TYPE = "application/vnd.saltosystems.ship.v1+xml"
MAX_XML_BYTES = 1024 * 1024  # a request or answer; a full user list is paged well below it
MAX_DEPTH = 16  # SHIP documents nest five or six levels

# SHIP exception codes (the project's own numbering, after HTTP's; see docs/ship-in-space.md).
BAD_REQUEST = 400  # not XML, not a RequestCall, a parameter missing or invalid
NOT_AUTHENTICATED = 401  # no API key, or a bad one
PERMISSION_DENIED = 403
NOT_FOUND = 404  # the user, door, group or zone named does not exist (or is not visible)
ALREADY_EXISTS = 409  # SaltoDBUser.Insert of an ExtUserID that exists
TOO_LARGE = 413
INTERNAL_ERROR = 500
UNKNOWN_REQUEST = 502  # as a SALTO server answers a RequestName it does not know
HOTEL_ERROR = 520  # a hotel operation refused (its HotelError code is in the Message)


class ShipError(Exception):
    """A request that cannot be carried out; answered as a SHIP ``<Exception>``."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --- XML ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    name: str
    params: ET.Element  # the <Params> element (an empty one when the request had none)


@dataclass(frozen=True)
class Response:
    name: str
    params: ET.Element | None  # None when the answer is an exception
    error: ShipError | None = None


def _refuse_doctype(*args) -> None:
    raise ShipError(BAD_REQUEST, "Document type declarations are not accepted.")


def parse_xml(data: bytes) -> ET.Element:
    """The root element of ``data``; raises ShipError for anything but a small, plain XML document."""
    if len(data) > MAX_XML_BYTES:
        raise ShipError(TOO_LARGE, f"The document is larger than {MAX_XML_BYTES} bytes.")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    depth = 0

    def start(tag, attributes):
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise ShipError(BAD_REQUEST, f"The document nests deeper than {MAX_DEPTH} levels.")
        builder.start(tag, {})

    def end(tag):
        nonlocal depth
        depth -= 1
        builder.end(tag)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.ExternalEntityRefHandler = _refuse_doctype
    try:
        parser.Parse(data, True)
        return builder.close()
    except ShipError:
        raise
    except (expat.ExpatError, ValueError, LookupError, AssertionError) as error:
        # LookupError: an unknown declared encoding; AssertionError: TreeBuilder with no root.
        raise ShipError(BAD_REQUEST, f"Not well-formed XML: {error}") from None


def _name_of(root: ET.Element) -> str:
    name = text(root, "RequestName")
    if not name:
        raise ShipError(BAD_REQUEST, "The RequestName is missing.")
    return name


def parse_request(data: bytes) -> Request:
    root = parse_xml(data)
    if root.tag != "RequestCall":
        raise ShipError(BAD_REQUEST, f"A request is a RequestCall, not a {root.tag[:40]}.")
    params = root.find("Params")
    return Request(_name_of(root), params if params is not None else ET.Element("Params"))


def parse_response(data: bytes) -> Response:
    """An answer from another SHIP server (the host client mode)."""
    root = parse_xml(data)
    if root.tag != "RequestResponse":
        raise ShipError(BAD_REQUEST, f"An answer is a RequestResponse, not a {root.tag[:40]}.")
    exception = root.find("Exception")
    if exception is not None:
        code = text(exception, "Code")
        error = ShipError(int(code) if code.isdigit() else INTERNAL_ERROR, text(exception, "Message"))
        return Response(text(root, "RequestName"), None, error)
    params = root.find("Params")
    return Response(_name_of(root), params if params is not None else ET.Element("Params"))


def text(element: ET.Element | None, path: str, default: str = "") -> str:
    """The trimmed text of the child at ``path``; ``default`` when there is none."""
    found = element.find(path) if element is not None else None
    if found is None:
        return default
    return "".join(found.itertext()).strip()


# Nodes to build a document from: (tag, text) or (tag, [children]).
Node = tuple[str, "str | list[Node]"]

# Characters XML 1.0 cannot carry at all; dropped from values rather than making a document no one can read.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _append(parent: ET.Element, nodes: list[Node]) -> None:
    for tag, value in nodes:
        child = ET.SubElement(parent, tag)
        if isinstance(value, list):
            _append(child, value)
        else:
            child.text = _NOT_XML.sub("", value)


def _document(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def build_request(name: str, params: list[Node]) -> bytes:
    root = ET.Element("RequestCall")
    ET.SubElement(root, "RequestName").text = name
    _append(ET.SubElement(root, "Params"), params)
    return _document(root)


def build_response(name: str, params: list[Node]) -> bytes:
    root = ET.Element("RequestResponse")
    ET.SubElement(root, "RequestName").text = _NOT_XML.sub("", name)
    _append(ET.SubElement(root, "Params"), params)
    return _document(root)


def build_error(name: str, error: ShipError) -> bytes:
    root = ET.Element("RequestResponse")
    ET.SubElement(root, "RequestName").text = _NOT_XML.sub("", name)
    _append(root, [("Exception", [("Code", str(error.code)), ("Message", error.message)])])
    return _document(root)


def nodes_of(element: ET.Element) -> list[Node]:
    """``element``'s children as nodes (the inverse of building): a leaf's text, trimmed, or its children."""
    return [(child.tag, nodes_of(child) if len(child) else (child.text or "").strip()) for child in element]


# --- values ------------------------------------------------------------------------------------------


def flag(value: bool) -> str:
    return "1" if value else "0"


def parse_flag(value: str, name: str) -> bool:
    if value in ("0", "1"):
        return value == "1"
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ShipError(BAD_REQUEST, f"{name} is 0 or 1, not {value[:20]!r}.")


def parse_int(value: str, name: str, low: int = 0, high: int = 2**31 - 1) -> int:
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 12 or not low <= int(value) <= high:
        raise ShipError(BAD_REQUEST, f"{name} is a whole number from {low} to {high}, not {value[:20]!r}.")
    return int(value)


# --- TCP framing: STP/00/<length>/<xml> --------------------------------------------------------------

PREFIX = b"STP/00/"
MAX_LENGTH_DIGITS = len(str(MAX_XML_BYTES))
_BETWEEN_FRAMES = b" \t\r\n"


def frame(document: bytes) -> bytes:
    """One frame: the prefix, the document's length in bytes (decimal), a slash, the document."""
    return PREFIX + str(len(document)).encode() + b"/" + document


class FramingError(ShipError):
    """The byte stream is not STP frames: the connection cannot be read further."""


class FrameDecoder:
    """Cuts a TCP byte stream, in chunks of any size, into the documents of its STP frames.

    ``feed`` returns the documents the new bytes completed. Bytes that are not a
    frame (a wrong prefix, a length that is not decimal digits, a length over
    :data:`MAX_XML_BYTES`) raise :class:`FramingError`: a length-prefixed stream has
    no point to resynchronise from, so the reader answers once and closes. Blanks
    and line ends between frames are skipped. ``pending`` says whether a frame is
    half received (a peer that leaves then dropped mid-frame).
    """

    def __init__(self, max_length: int = MAX_XML_BYTES):
        self.max_length = max_length
        self.buffer = bytearray()
        self.failed: FramingError | None = None

    @property
    def pending(self) -> bool:
        return bool(self.buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self.failed is not None:
            raise self.failed
        self.buffer += data
        documents = []
        try:
            while (document := self._next()) is not None:
                documents.append(document)
        except FramingError as error:
            self.failed = error
            self.buffer.clear()
            raise
        return documents

    def _next(self) -> bytes | None:
        start = 0
        while start < len(self.buffer) and self.buffer[start] in _BETWEEN_FRAMES:
            start += 1
        del self.buffer[:start]
        head = bytes(self.buffer[: len(PREFIX)])
        if not PREFIX.startswith(head):
            raise FramingError(BAD_REQUEST, "The stream is not STP frames (no STP/00/ prefix).")
        if len(head) < len(PREFIX):
            return None
        slash = self.buffer.find(b"/", len(PREFIX), len(PREFIX) + MAX_LENGTH_DIGITS + 1)
        digits = bytes(self.buffer[len(PREFIX) : slash if slash != -1 else len(PREFIX) + MAX_LENGTH_DIGITS + 1])
        if not digits.isdigit() and digits:
            raise FramingError(BAD_REQUEST, "An STP frame's length is decimal digits.")
        if slash == -1:
            if len(digits) > MAX_LENGTH_DIGITS:
                raise FramingError(TOO_LARGE, f"An STP frame is at most {self.max_length} bytes.")
            return None
        if not digits:
            raise FramingError(BAD_REQUEST, "An STP frame's length is missing.")
        length = int(digits)
        if length > self.max_length:
            raise FramingError(TOO_LARGE, f"An STP frame is at most {self.max_length} bytes, not {length}.")
        end = slash + 1 + length
        if len(self.buffer) < end:
            return None
        document = bytes(self.buffer[slash + 1 : end])
        del self.buffer[:end]
        return document
