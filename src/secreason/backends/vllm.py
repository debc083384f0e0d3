"""vLLM's offline engine as a backend: the fast path for evaluating on a GPU.

vLLM has no CPU wheel and pulls its own torch, so it is an optional extra
(``pip install 'secreason[vllm]'``) imported only when this backend is built. The
engine batches and schedules by itself; we hand it every conversation of a chunk at
once through ``LLM.chat`` (the model's own chat template) with the seed in
``SamplingParams``, so sampled runs are reproducible per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.reasoning import THINK


class VLLMNotInstalled(ImportError):
    pass


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise VLLMNotInstalled(
            "the vllm backend needs vLLM, which is not installed: "
            "pip install 'secreason[vllm]' (GPU only), or use --backend transformers "
            "(any device) or --backend openai --base-url URL (a running vLLM server)"
        ) from error
    return vllm


class VLLMBackend(Backend):
    """``vllm.LLM`` with the model's chat template; one engine for the whole run."""

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        dtype: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        batch_size: int = 1024,
        think_ids: tuple[int, int] | None = None,
        **engine_options: Any,
    ) -> None:
        vllm = _import_vllm()
        self._vllm = vllm
        self.model_id = str(model)
        self.revision = revision
        self.batch_size = batch_size
        self.think_ids = tuple(think_ids) if think_ids else None
        options: dict[str, Any] = {
            "model": self.model_id,
            "revision": revision,
            "dtype": dtype or "auto",
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            **engine_options,
        }
        if max_model_len:
            options["max_model_len"] = max_model_len
        self.llm = vllm.LLM(**options)
        self.tokenizer = self.llm.get_tokenizer()
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
        )
        self.prefilled = str(prompt).rstrip().endswith(THINK.open)

    def _sampling(self, params: SamplingParams) -> Any:
        return self._vllm.SamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
            # Keep think-tag ids (special on some models) so the contract can split.
            skip_special_tokens=self.think_ids is None,
        )

    def _text(self, output: Any) -> str:
        if self.think_ids is None:
            return str(output.text)
        open_id, close_id = self.think_ids
        pieces: list[str] = []
        segment: list[int] = []
        for token in output.token_ids:
            if token in (open_id, close_id):
                pieces.append(self.tokenizer.decode(segment, skip_special_tokens=True))
                pieces.append(THINK.open if token == open_id else THINK.close)
                segment = []
            else:
                segment.append(token)
        pieces.append(self.tokenizer.decode(segment, skip_special_tokens=True))
        return "".join(pieces)

    def generate(
        self, conversations: Sequence[list[Message]], params: SamplingParams
    ) -> list[Generation]:
        if not conversations:
            return []
        outputs = self.llm.chat(
            [list(c) for c in conversations], self._sampling(params), use_tqdm=False
        )
        results = []
        for request in outputs:
            first = request.outputs[0]
            results.append(
                Generation(
                    text=self._text(first),
                    finish_reason=first.finish_reason or "stop",
                    prompt_tokens=len(request.prompt_token_ids or []),
                    completion_tokens=len(first.token_ids),
                )
            )
        return results

    def close(self) -> None:
        self.llm = None
