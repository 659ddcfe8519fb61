"""The engine's LoRAs and textual-inversion embeddings ("extra networks", as A1111 calls them) in one service.

``check`` is admission's (cheap: names and families); ``for_job`` gives a running job its prompt without the
LoRA tags and its LoRA files; ``apply`` puts them, and the embeddings, on a loaded model's pipeline before
its prompt is encoded. What ``apply`` returns goes into the prompt cache's key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from latentbrush.protocol import ErrorCode, JobRequest, LoraInfo, ProtocolError

from ..events import EngineError
from ..models.folders import ModelFolders
from ..prompts.embeddings import EmbeddingEntry, EmbeddingRegistry, load_embeddings
from .apply import ActiveLora, apply_loras
from .registry import LoraRegistry
from .request import lora_request


@dataclass(frozen=True)
class JobNetworks:
    """What a running job puts on its model: LoRAs at their weights, the embeddings to have loaded."""

    loras: tuple[ActiveLora, ...] = ()
    embeddings: tuple[EmbeddingEntry, ...] = ()

    @property
    def info(self) -> list[dict[str, Any]]:
        return [{"name": x.entry.name, "weight": x.weight} for x in self.loras]


NO_NETWORKS = JobNetworks()


@dataclass(frozen=True)
class Applied:
    """What the prompt's embeddings depend on after ``apply``: the cache key's part."""

    text_loras: tuple[tuple[str, float], ...]  # (file, weight) of the active LoRAs with text-encoder layers
    embeddings: tuple[str, ...]  # names loaded into the model's tokenizer


class Networks:
    def __init__(self, folders: ModelFolders) -> None:
        self.loras = LoraRegistry(folders.loras)
        self.embeddings = EmbeddingRegistry(folders.embeddings)

    def lora_infos(self) -> tuple[LoraInfo, ...]:
        return self.loras.infos()

    def embedding_names(self) -> tuple[str, ...]:
        return self.embeddings.names()

    def check(self, job: JobRequest, family: str) -> ProtocolError | None:
        """SPEC.md 9.12: an unknown name is bad_field, a LoRA of another family than the job model's (``family``,
        ``registry.model_family``) not_supported."""
        request = lora_request(job)
        if isinstance(request, ProtocolError):
            return request
        for lora in request.loras:
            error = self.loras.problem(lora.name, lora.field)
            if error is not None:
                return error
            entry = self.loras.get(lora.name)
            if entry.family != family:
                message = f"LoRA {lora.name!r} is for {entry.family} models; {job.model or 'the default model'} " \
                          f"is {family}"
                return ProtocolError(ErrorCode.NOT_SUPPORTED, message, lora.field)
        return None

    def for_job(self, job: JobRequest, family: str) -> tuple[str, JobNetworks]:
        """The job's prompt without LoRA tags, and its networks; EngineError as ``check`` would say."""
        error = self.check(job, family)
        if error is not None:
            raise EngineError(error.code, error.message, error.field)
        request = lora_request(job)
        if isinstance(request, ProtocolError):  # check said it parses
            raise EngineError(request.code, request.message, request.field)
        loras = tuple(ActiveLora(self.loras.get(x.name), x.weight, x.field) for x in request.loras)
        return request.prompt, JobNetworks(loras, self.embeddings.entries())


def job_networks(networks: Networks | None, job: JobRequest, family: str) -> tuple[JobRequest, JobNetworks]:
    """``job`` with its prompt's LoRA tags removed, and what it puts on its model (``networks`` None: an engine
    without LoRA support, where a job asking for one is refused rather than run without it)."""
    if networks is not None:
        prompt, found = networks.for_job(job, family)
        return replace(job, prompt=prompt), found
    request = lora_request(job)
    if isinstance(request, ProtocolError):
        raise EngineError(request.code, request.message, request.field)
    if request.loras:
        raise EngineError(ErrorCode.NOT_SUPPORTED, "this server applies no LoRAs", request.loras[0].field)
    return job, NO_NETWORKS


def apply_networks(pipe: Any, networks: JobNetworks, model_name: str) -> Applied:
    """Put ``networks`` on ``pipe`` (a pipeline of the model whose modules every other one shares)."""
    if not hasattr(pipe, "set_adapters"):  # a pipeline without LoRA support: only possible with none asked
        if networks.loras:
            raise EngineError(ErrorCode.NOT_SUPPORTED, f"{type(pipe).__name__} takes no LoRAs",
                              networks.loras[0].field)
        return Applied((), ())
    apply_loras(pipe, networks.loras, model_name)
    loaded = load_embeddings(pipe, networks.embeddings) if networks.embeddings else ()
    text = tuple((x.entry.location, x.weight) for x in networks.loras if x.entry.text_encoder)
    return Applied(text, loaded)
