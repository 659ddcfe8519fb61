"""Download failures in plain words: what went wrong and what to do, never a token."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


class DownloadError(Exception):
    """A download that cannot go on; ``str()`` is the message for the user."""


def hub_page(repo: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/{repo}"


def gated_message(repo: str, has_token: bool) -> str:
    page = hub_page(repo)
    if has_token:
        return (f"{repo} is gated and the Hugging Face token in use has no access to it yet: log in at {page} "
                "with that token's account and accept the licence there, then run this again.")
    return (f"{repo} is gated: log in at {page} and accept its licence, then create a read token at "
            f"{TOKENS_PAGE} and set it as the HF_TOKEN environment variable (or run `hf auth login`), "
            "then run this again.")


def has_token() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None


def explain(exc: BaseException, repo: str, gated: bool = False) -> DownloadError:
    """``exc`` (from huggingface_hub or the network) as a DownloadError for the user; details go to the debug log."""
    import httpx2
    from huggingface_hub import errors

    log.debug("download from %s failed", repo, exc_info=exc)
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return DownloadError("downloads are switched off: the HF_HUB_OFFLINE environment variable is set; "
                             "unset it to download models")
    if isinstance(exc, errors.GatedRepoError):
        return DownloadError(gated_message(repo, has_token()))
    if isinstance(exc, errors.RepositoryNotFoundError):  # the Hub answers 401 for gated repos without a token too
        if gated:
            return DownloadError(gated_message(repo, has_token()))
        return DownloadError(f"{repo} was not found on the Hugging Face Hub (it may have moved; "
                             "a newer latentbrush may know where)")
    if isinstance(exc, (errors.RevisionNotFoundError, errors.RemoteEntryNotFoundError)):
        return DownloadError(f"a file of {repo} was not found on the Hugging Face Hub (the model set may be "
                             "out of date; a newer latentbrush may know where it went)")
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return DownloadError(f"the Hugging Face Hub refused or failed the download of {repo} (HTTP {status}); "
                             "try again later")
    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return DownloadError(f"cannot reach the Hugging Face Hub ({_endpoint()}) or the connection dropped: "
                             "check the internet connection and run this again (finished and partly "
                             "downloaded files are kept)")
    if isinstance(exc, OSError) and exc.errno is None:  # huggingface_hub's size check: the stream ended early
        return DownloadError(f"the download of {repo} was cut short: run this again to resume it")
    if isinstance(exc, OSError):
        return DownloadError(f"cannot write the download of {repo}: {exc.strerror or exc}")
    return DownloadError(f"the download of {repo} failed: {type(exc).__name__}: {exc}")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT
