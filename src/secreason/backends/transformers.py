"""Local generation with Hugging Face transformers: CPU or one GPU, batched, no server.

This is the backend that runs everywhere (tests, laptops, a single GPU), so it favours
being exact over being fast: the model's own chat template renders every prompt,
batches are LEFT padded (decoder-only models continue from the last position, so
padding must sit before the prompt), and prompts are grouped by length so a batch
carries as little padding as possible. Decoding settings are passed explicitly
(``top_k`` off, as OpenAI-compatible servers do) so a hub model's
``generation_config.json`` cannot silently change the protocol.

Reasoning delimiters are found by string (our tiny model: ``<think>`` is a normal
token) or by token id (``think_ids``, Foundation-Sec-8B-Reasoning: the tags are
special tokens that ``skip_special_tokens`` would erase). With ids, each completion is
decoded piecewise around the delimiter ids and the tags are written back as strings,
so the one reasoning contract splits it exactly as :func:`reasoning.split_ids` would.

On a GPU, batched ``generate`` decodes with a static KV cache, which lets transformers
compile the decode step (CUDA graphs): the per-token cost of an 8B model falls from
Python/launch overhead towards its memory-bound floor (README "GPU speed"). The first
batch of each new shape pays the compilation; ``static_cache=False`` turns it off.
Streaming (one request, served live) keeps the dynamic cache and never waits on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from secreason.backends.base import Backend, Generation, Message, SamplingParams
from secreason.reasoning import THINK, Tags

_DTYPES = ("float32", "float16", "bfloat16")


def _pick_device(device: str | None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_dtype(dtype: str | None, device: str) -> Any:
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)} or 'auto'")
    return getattr(torch, dtype)


class TransformersBackend(Backend):
    """Batched ``model.generate`` behind the :class:`Backend` contract."""

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 16,
        think_ids: tuple[int, int] | None = None,
        tags: Tags = THINK,
        trust_remote_code: bool = False,
        static_cache: bool | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = str(model)
        self.revision = revision
        self.device = _pick_device(device)
        self.batch_size = max(1, int(batch_size))
        self.think_ids = tuple(think_ids) if think_ids else None
        self.static_cache = (
            self.device.startswith("cuda") if static_cache is None else bool(static_cache)
        )
        self.tags = tags
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.model_id, revision=revision, trust_remote_code=trust_remote_code
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"{self.model_id}: the tokenizer has no chat template; secreason sends chat "
                "conversations, so use an instruct/reasoning model or set "
                "tokenizer.chat_template in its tokenizer_config.json"
            )
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            self.model_id,
            revision=revision,
            dtype=_pick_dtype(dtype, self.device),
            trust_remote_code=trust_remote_code,
        )
        self.model = self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self._eos_ids = self._collect_eos_ids()
        self.prefilled = self._template_prefills()

    # ------------------------------------------------------------------ prompts

    def render(self, conversation: list[Message]) -> str:
        """The exact prompt text the model sees (chat template + generation prompt)."""
        return str(
            self.tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
        )

    def _template_prefills(self) -> bool:
        try:
            prompt = self.render([{"role": "user", "content": "x"}])
        except Exception:  # a template that refuses a lone user turn makes no claim
            return False
        if prompt.rstrip().endswith(self.tags.open):
            return True
        if self.think_ids:
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            return bool(ids) and self.think_ids[0] in ids[-2:]
        return False

    def _collect_eos_ids(self) -> list[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(int(i) for i in configured)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)

    def _generate_kwargs(self, params: SamplingParams, batched: bool = False) -> dict[str, Any]:
        sampling = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos_ids,
        }
        if sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if batched and self.static_cache:
            # A fixed-size cache is what transformers compiles the decode step for.
            kwargs["cache_implementation"] = "static"
        return kwargs

    # --------------------------------------------------------------- generation

    def generate(
        self,
        conversations: Sequence[list[Message]],
        params: SamplingParams,
        *,
        cancel: Sequence[threading.Event] | None = None,
    ) -> list[Generation]:
        """``cancel`` (one event per conversation, for the server): a row whose event is
        set stops at its next token; the batch returns once every row has stopped."""
        import torch

        if not conversations:
            return []
        if params.seed is not None:
            torch.manual_seed(params.seed)
        prompts = [self.render(list(c)) for c in conversations]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Longest first, so a batch holds prompts of similar length (little padding).
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(prompts)
        kwargs = self._generate_kwargs(params, batched=True)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.tokenizer.pad(
                {"input_ids": [encoded[i] for i in chunk]},
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            extra = {}
            if cancel is not None:
                extra["stopping_criteria"] = _cancel_criteria([cancel[i] for i in chunk])
            with torch.inference_mode():
                output = self.model.generate(**batch, **kwargs, **extra)
            width = batch["input_ids"].shape[1]
            for row, index in enumerate(chunk):
                new = output[row, width:].tolist()
                results[index] = self._to_generation(new, len(encoded[index]), params)
        return [r for r in results if r is not None]

    def _to_generation(
        self, ids: list[int], prompt_tokens: int, params: SamplingParams
    ) -> Generation:
        pad = self.tokenizer.pad_token_id
        finish = "length"
        cut = len(ids)
        for k, token in enumerate(ids):
            if token in self._eos_ids:
                cut, finish = k, "stop"
                break
        if finish == "length":
            # Padding after a finished row; a pad id that is not EOS ends the row too.
            while cut and ids[cut - 1] == pad and pad not in self._eos_ids:
                cut -= 1
        completion = ids[:cut]
        text = self._decode(completion)
        if params.stop:
            hits = [text.find(s) for s in params.stop if s and s in text]
            if hits:
                text, finish = text[: min(hits)], "stop"
        return Generation(
            text=text,
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(completion) + (finish == "stop" and cut < len(ids)),
            meta={"raw": self.tokenizer.decode(completion, skip_special_tokens=False)}
            if self.think_ids
            else {},
        )

    def _decode(self, ids: list[int]) -> str:
        """Decode without special tokens, writing think-tag ids back as tag strings."""
        if not self.think_ids:
            return str(self.tokenizer.decode(ids, skip_special_tokens=True))
        open_id, close_id = self.think_ids
        pieces: list[str] = []
        segment: list[int] = []
        for token in ids:
            if token in (open_id, close_id):
                pieces.append(str(self.tokenizer.decode(segment, skip_special_tokens=True)))
                pieces.append(self.tags.open if token == open_id else self.tags.close)
                segment = []
            else:
                segment.append(token)
        pieces.append(str(self.tokenizer.decode(segment, skip_special_tokens=True)))
        return "".join(pieces)

    # ---------------------------------------------------------------- streaming

    def stream(
        self,
        conversation: list[Message],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Text deltas of one generation, decoded as they come (for the server); setting
        ``cancel`` stops the generation at its next token."""
        import torch

        stop = cancel if cancel is not None else threading.Event()
        streamer = _make_streamer(self, timeout=None)
        batch = self.tokenizer(
            self.render(conversation), add_special_tokens=False, return_tensors="pt"
        ).to(self.device)
        kwargs = self._generate_kwargs(params)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                with torch.inference_mode():
                    self.model.generate(
                        **batch,
                        **kwargs,
                        streamer=streamer,
                        stopping_criteria=_cancel_criteria([stop]),
                    )
            except BaseException as error:  # surfaced to the consumer below
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=run, name="secreason-stream", daemon=True)
        thread.start()
        try:
            emitted = ""
            for delta in streamer:
                if params.stop:
                    candidate = emitted + delta
                    hits = [candidate.find(s) for s in params.stop if s and s in candidate]
                    if hits:
                        tail = candidate[: min(hits)][len(emitted) :]
                        if tail:
                            yield tail
                        break
                    emitted = candidate
                if delta:
                    yield delta
        finally:
            stop.set()
            thread.join()
        if errors:
            raise errors[0]

    def close(self) -> None:
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _cancel_criteria(events: Sequence[threading.Event]) -> Any:
    """A stopping criterion that ends row ``i`` once ``events[i]`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            flags = [event.is_set() for event in events]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancelled()])


def _make_streamer(backend: TransformersBackend, timeout: float | None) -> Any:
    """A ``TextIteratorStreamer`` that keeps think tags given as special token ids."""
    from transformers import TextIteratorStreamer

    tokenizer = backend.tokenizer
    if not backend.think_ids:
        return TextIteratorStreamer(
            tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout
        )

    open_text = str(tokenizer.convert_ids_to_tokens(backend.think_ids[0]))
    close_text = str(tokenizer.convert_ids_to_tokens(backend.think_ids[1]))
    drop = [t for t in tokenizer.all_special_tokens if t not in (open_text, close_text)]

    class Streamer(TextIteratorStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            for token in drop:
                text = text.replace(token, "")
            text = text.replace(open_text, backend.tags.open).replace(
                close_text, backend.tags.close
            )
            super().on_finalized_text(text, stream_end)

    return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=False, timeout=timeout)
