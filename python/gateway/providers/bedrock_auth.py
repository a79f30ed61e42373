"""AWS auth for Bedrock: the four `aws_config` modes (spec §2.4.1), SigV4 via botocore, endpoints.

* keys: the configured access key, secret and optional session token;
* role: STS AssumeRole with the default chain's credentials, cached until shortly before they
  expire (MLflow re-assumed the role on every request);
* bearer: a Bedrock API key sent as `Authorization: Bearer ...`;
* base: botocore's default credential chain (env, shared files, SSO, container and instance
  metadata), or `AWS_BEARER_TOKEN_BEDROCK` when set, as botocore itself does.

Every botocore call that can do I/O (credential resolution, STS, client creation) runs in a
thread; signing itself is a few HMACs and runs inline. As in MLflow, no AWS field takes `$VAR`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import botocore.session
import msgspec
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from gateway.errors import ConfigError, GatewayError, UpstreamError, UpstreamUnavailable

SIGNING_NAME = "bedrock"
ROLE_SESSION_NAME = "ai-gateway-bedrock"
BEARER_REGION_REQUIRED = (
    "aws_region_name is required for Bedrock API key authentication. "
    "The API key can only be used in the AWS Region it was generated in."
)

Mode = Literal["bearer", "role", "keys", "base"]


class AwsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """One `aws_config`, its mode picked in MLflow's order: bearer, role, keys, base."""

    mode: Mode
    region: str | None = None
    bearer_token: str | None = None
    role_arn: str | None = None
    session_length_seconds: int = 900
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


def parse_aws_config(raw: Any) -> AwsSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError("aws_config: Input should be a valid mapping")
    region = _optional_str(raw, "aws_region")
    if raw.get("aws_bearer_token") is not None:
        return AwsSettings(mode="bearer", region=region, bearer_token=_str(raw, "aws_bearer_token"))
    if raw.get("aws_role_arn") is not None:
        length = raw.get("session_length_seconds", 900)
        if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
            raise ConfigError("aws_config.session_length_seconds: Input should be a positive integer")
        return AwsSettings(
            mode="role", region=region, role_arn=_str(raw, "aws_role_arn"), session_length_seconds=length
        )
    if raw.get("aws_access_key_id") is not None or raw.get("aws_secret_access_key") is not None:
        # MLflow would silently fall back to the default chain when one half is missing
        return AwsSettings(
            mode="keys",
            region=region,
            access_key_id=_str(raw, "aws_access_key_id"),
            secret_access_key=_str(raw, "aws_secret_access_key"),
            session_token=_optional_str(raw, "aws_session_token"),
        )
    return AwsSettings(mode="base", region=region)


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        raise ConfigError(f"aws_config.{key}: Field required")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"aws_config.{key}: Input should be a non-empty string")
    return value


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    return _str(raw, key) if raw.get(key) is not None else None


def resolve_region(settings: AwsSettings, environ: Mapping[str, str] = os.environ) -> str | None:
    """aws_region, else the SDKs' AWS_REGION / AWS_DEFAULT_REGION, else the profile's region."""
    region = settings.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    profile_region = botocore.session.Session().get_config_variable("region")
    return str(profile_region) if profile_region else None


def runtime_endpoint(region: str, environ: Mapping[str, str] = os.environ) -> str:
    """The Bedrock Runtime base URL, honouring the AWS SDKs' endpoint overrides: the
    service-specific AWS_ENDPOINT_URL_BEDROCK_RUNTIME first, then the global AWS_ENDPOINT_URL,
    both switched off by AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        for name in ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL"):
            if environ.get(name):
                return environ[name].rstrip("/")
    host = (
        "bedrock-runtime-fips"
        if environ.get("AWS_USE_FIPS_ENDPOINT", "").lower() == "true"
        else "bedrock-runtime"
    )
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{host}.{region}.{suffix}"


def sign(
    credentials: ReadOnlyCredentials,
    region: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    service: str = SIGNING_NAME,
) -> dict[str, str]:
    """`headers` plus botocore's SigV4 `X-Amz-Date`, `X-Amz-Security-Token` and `Authorization`.

    The URL must be byte-for-byte the one sent (the path is signed) and `body` the exact bytes.
    """
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


class CredentialSource(Protocol):
    async def get(self) -> ReadOnlyCredentials: ...


class StaticCredentials:
    def __init__(self, access_key: str, secret_key: str, token: str | None) -> None:
        self._frozen = ReadOnlyCredentials(access_key, secret_key, token)

    async def get(self) -> ReadOnlyCredentials:
        return self._frozen


class ChainCredentials:
    """botocore's default chain, resolved once; temporary credentials (SSO, container,
    instance metadata, assume-role profiles) refresh through botocore, off the loop."""

    def __init__(self) -> None:
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    async def get(self) -> ReadOnlyCredentials:
        credentials = self._credentials
        if credentials is None:
            async with self._lock:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(_default_chain)
                credentials = self._credentials
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            frozen: ReadOnlyCredentials = await asyncio.to_thread(credentials.get_frozen_credentials)
            return frozen
        return credentials.get_frozen_credentials()


def _default_chain() -> Any:
    credentials = botocore.session.Session().get_credentials()
    if credentials is None:
        raise GatewayError(
            "No AWS credentials found: set aws_config keys, a role or a bearer token, or provide "
            "credentials through the environment, the shared files or instance metadata.",
            status=500,
        )
    return credentials


class AssumedRoleCredentials:
    """STS AssumeRole, re-assumed only when the cached credentials near their expiry."""

    def __init__(self, role_arn: str, duration_seconds: int, region: str) -> None:
        self._role_arn = role_arn
        self._duration = duration_seconds
        self._region = region
        self._sts: Any = None  # created on first use: building a botocore client reads its model
        self._frozen: ReadOnlyCredentials | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> ReadOnlyCredentials:
        if self._frozen is None or time.time() >= self._refresh_at:
            async with self._lock:
                if self._frozen is None or time.time() >= self._refresh_at:
                    self._frozen, self._refresh_at = await asyncio.to_thread(self._assume)
        return self._frozen

    def _assume(self) -> tuple[ReadOnlyCredentials, float]:
        if self._sts is None:
            self._sts = botocore.session.Session().create_client("sts", region_name=self._region)
        answer = self._sts.assume_role(
            RoleArn=self._role_arn, RoleSessionName=ROLE_SESSION_NAME, DurationSeconds=self._duration
        )
        issued = answer["Credentials"]
        now = time.time()
        expires = issued["Expiration"].timestamp()
        # refresh a little before expiry: a quarter of the lifetime, at most five minutes
        refresh_at = expires - min(300.0, max(0.0, expires - now) / 4)
        frozen = ReadOnlyCredentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
        return frozen, refresh_at


class BedrockAuth:
    """Final request headers for one endpoint: SigV4-signed, or a bearer token."""

    def __init__(self, settings: AwsSettings, region: str, environ: Mapping[str, str] = os.environ) -> None:
        self.region = region
        self.mode: Mode = settings.mode
        self._bearer = settings.bearer_token
        if settings.mode == "base" and environ.get("AWS_BEARER_TOKEN_BEDROCK"):
            self.mode, self._bearer = "bearer", environ["AWS_BEARER_TOKEN_BEDROCK"]
        self._credentials: CredentialSource | None = None
        if settings.mode == "keys":
            assert settings.access_key_id is not None and settings.secret_access_key is not None
            self._credentials = StaticCredentials(
                settings.access_key_id, settings.secret_access_key, settings.session_token
            )
        elif settings.mode == "role":
            assert settings.role_arn is not None
            self._credentials = AssumedRoleCredentials(
                settings.role_arn, settings.session_length_seconds, region
            )
        elif self.mode == "base":
            self._credentials = ChainCredentials()

    async def headers(self, url: str, headers: Mapping[str, str], body: bytes, label: str) -> dict[str, str]:
        if self._credentials is None:
            return {**headers, "Authorization": f"Bearer {self._bearer}"}
        try:
            credentials = await self._credentials.get()
        except ClientError as exc:
            raise credential_error(exc) from None
        except BotoCoreError as exc:
            raise UpstreamUnavailable(f"{label} could not get AWS credentials: {exc}") from None
        return sign(credentials, self.region, url, headers, body)


def credential_error(exc: ClientError) -> UpstreamError:
    """An STS error answer (AccessDenied, expired token, ...) keeps its status and message."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502
    message = error.get("Message") or error.get("Code") or "unknown error"
    return UpstreamError(f"AWS STS AssumeRole failed: {message}", status=int(status))
