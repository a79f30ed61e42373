"""An emulated Bedrock Runtime (and STS) on 127.0.0.1 for the Bedrock provider tests.

Speaks Converse, ConverseStream (binary AWS event stream) and InvokeModel (Titan and Cohere
embeddings) in their documented wire formats, and STS AssumeRole (query protocol, XML). Every
request's SigV4 signature is recomputed with botocore from what arrived (the raw path, the
signed headers, the body bytes) and the credentials the test registered; a wrong one gets
Bedrock's 403. Behaviour is picked by the model id in the path:

  err-400 / err-429 / err-500 / err-503   {"message": ...} with x-amzn-ErrorType
  malformed                               200 with a body missing `output`
  slow                                    answers after 3 s
  tools                                   a toolUse answer (streamed: toolUse deltas)
  stream-exception                        two events, then a throttlingException frame
  *cohere*  (invoke)                      Cohere embeddings; anything else Titan's
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import re
import struct
import uuid
import zlib
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.recording import RecordingUpstream, write_awkwardly

REGION = "us-east-1"
WORDS = ["Hello", " from", " Bedrock", " — ünïcødé", " ✓"]
USAGE = {"inputTokens": 12, "outputTokens": 5, "totalTokens": 20, "cacheReadInputTokens": 3}
BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
ERRORS = {
    "err-400": (
        400,
        "ValidationException",
        "Malformed input request: #: extraneous key [foo] is not permitted",
    ),
    "err-429": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "err-500": (500, "InternalServerException", "The server encountered an internal error."),
    "err-503": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
}
STS_DENIED = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::123456789012:user/gw is not authorized to perform: sts:AssumeRole on resource: {role}</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"""
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
    r"/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message with string headers (written independently of the
    gateway's Rust decoder, with zlib's CRC32)."""
    head = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(kind: str, data: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    # Bedrock pads event payloads with a "p" field of varying length
    return encode_message(headers, orjson.dumps({**data, "p": "abcdefghij"[: len(kind) % 10]}))


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, orjson.dumps({"message": message}))


class BedrockUpstream(RecordingUpstream):
    def __init__(self) -> None:
        super().__init__()
        self.credentials: dict[str, tuple[str, str | None]] = {}  # access key -> (secret, token)
        self.bearer_tokens: set[str] = set()
        self.assumed: list[dict[str, str]] = []  # AssumeRole parameters, one per STS call
        self.signature_failures = 0
        self.raw_paths: list[str] = []  # as they arrived, percent-encoding included

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/model/{model}/{operation:converse|converse-stream|invoke}", self.handle)
        app.router.add_post("/", self.sts)

    # -- auth ----------------------------------------------------------------------------
    def check_auth(self, request: web.Request, raw: bytes, service: str) -> web.Response | None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            if service == "bedrock" and authorization[7:] in self.bearer_tokens:
                return None
            return error(
                403, "AccessDeniedException", "Authentication failed: Please make sure your API Key is valid."
            )
        match = AUTH.fullmatch(authorization)
        if match is None:
            return error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        known = self.credentials.get(match["key"])
        if known is None or known[1] != request.headers.get("X-Amz-Security-Token"):
            return error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if not self.signature_matches(request, raw, match, known, service):
            self.signature_failures += 1
            return error(403, "InvalidSignatureException", BAD_SIGNATURE)
        return None

    @staticmethod
    def signature_matches(
        request: web.Request, raw: bytes, match: re.Match[str], known: tuple[str, str | None], service: str
    ) -> bool:
        """Recompute the signature with botocore from the request exactly as it arrived."""
        if match["service"] != service or match["region"] != REGION:
            return False
        amz_date = request.headers.get("X-Amz-Date", "")
        if amz_date[:8] != match["date"]:
            return False
        headers = {name: request.headers.get(name, "") for name in match["signed"].split(";")}
        aws = AWSRequest(
            method=request.method, url=f"http://{request.host}{request.raw_path}", data=raw, headers=headers
        )
        aws.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(match["key"], known[0], known[1]), service, REGION)
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        return hmac.compare_digest(expected, match["signature"])

    async def sts(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        denied = self.check_auth(request, recorded.raw, "sts")
        if denied is not None:
            return denied
        form = {key: values[0] for key, values in parse_qs(recorded.raw.decode()).items()}
        self.assumed.append(form)
        if form["RoleArn"].endswith("/denied"):
            return web.Response(
                status=403, text=STS_DENIED.format(role=form["RoleArn"]), content_type="text/xml"
            )
        key, secret, token = f"ASIA{uuid.uuid4().hex[:16].upper()}", uuid.uuid4().hex, uuid.uuid4().hex
        self.credentials[key] = (secret, token)
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=int(form["DurationSeconds"])
        )
        xml = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <SessionToken>{token}</SessionToken>
      <Expiration>{expires.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <AssumedRoleId>AROATEST:{form["RoleSessionName"]}</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/gateway/{form["RoleSessionName"]}</Arn>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
        return web.Response(text=xml, content_type="text/xml")

    # -- Bedrock Runtime -----------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        self.raw_paths.append(request.raw_path)
        denied = self.check_auth(request, recorded.raw, "bedrock")
        if denied is not None:
            return denied
        model, operation = request.match_info["model"], request.match_info["operation"]
        if model in ERRORS:
            status, kind, message = ERRORS[model]
            return error(status, kind, message)
        if model == "slow":
            await asyncio.sleep(3)
        body = recorded.body
        if operation == "invoke":
            return json(cohere_embeddings(body) if "cohere" in model else titan_embedding(body))
        if operation == "converse-stream":
            return await self.stream(request, model)
        if model == "malformed":
            return json({"stopReason": "end_turn", "usage": USAGE})
        return json(converse_answer(model))

    async def stream(self, request: web.Request, model: str) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": str(uuid.uuid4()),
            }
        )
        await response.prepare(request)
        frames = stream_frames(model)
        # the first two frames go out in one write, the rest split at awkward byte boundaries
        await response.write(frames[0] + frames[1])
        for frame in frames[2:]:
            await write_awkwardly(response, frame)
        await response.write_eof()
        return response


def json(data: dict[str, Any]) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        content_type="application/json",
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


def error(status: int, kind: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def converse_answer(model: str) -> dict[str, Any]:
    if model == "tools":
        content: list[dict[str, Any]] = [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}},
        ]
        stop = "tool_use"
    else:
        content, stop = [{"text": "".join(WORDS)}], "end_turn"
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": USAGE,
        "metrics": {"latencyMs": 321},
    }


def stream_frames(model: str) -> list[bytes]:
    frames = [event("messageStart", {"role": "assistant"})]
    frames += [
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}}) for word in WORDS
    ]
    if model == "stream-exception":
        return [
            *frames[:2],
            exception("throttlingException", "Too many tokens, please wait before trying again."),
        ]
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    stop = "end_turn"
    if model == "tools":
        start = {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather"}}
        frames.append(event("contentBlockStart", {"contentBlockIndex": 1, "start": start}))
        for part in ('{"city":', ' "Paris"}'):
            frames.append(
                event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": part}}})
            )
        frames.append(event("contentBlockStop", {"contentBlockIndex": 1}))
        stop = "tool_use"
    frames.append(event("messageStop", {"stopReason": stop}))
    frames.append(event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 123}}))
    return frames


def titan_embedding(body: dict[str, Any]) -> dict[str, Any]:
    text = body["inputText"]
    return {
        "embedding": [len(text) / 10, -0.5, 0.25],
        "embeddingsByType": {"float": [len(text) / 10, -0.5, 0.25]},
        "inputTextTokenCount": len(text.split()),
    }


def cohere_embeddings(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "embeddings": [[float(index), 0.5] for index, _ in enumerate(body["texts"])],
        "id": str(uuid.uuid4()),
        "response_type": "embeddings_floats",
        "texts": [text.lower() for text in body["texts"]],
    }
