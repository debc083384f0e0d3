"""``sdpa_varlen``: packed rows attend inside each sequence, padded batches stay SDPA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from secreason.train import packed_attention

LENGTHS = (7, 13, 1, 4)


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    from transformers import AutoModelForCausalLM

    packed_attention.register()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    varlen = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation=packed_attention.NAME
    )
    return plain.eval(), varlen.eval()


def _packed(lengths: tuple[int, ...]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    sequences = [torch.randint(5, 300, (n,), generator=generator) for n in lengths]
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    row = {
        "input_ids": torch.cat(sequences)[None],
        "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
        "cu_seq_lens_q": bounds,
        "cu_seq_lens_k": bounds,
    }
    return sequences, row


def test_packed_row_equals_each_sequence_alone(models: tuple) -> None:
    plain, varlen = models
    sequences, row = _packed(LENGTHS)
    with torch.no_grad():
        alone = torch.cat([plain(input_ids=s[None]).logits[0] for s in sequences])
        packed = varlen(**row, use_cache=False).logits[0]
        # The same row with the boundaries dropped: later sequences see earlier ones.
        leaky = varlen(input_ids=row["input_ids"], use_cache=False).logits[0]
    assert torch.allclose(packed, alone, atol=1e-5)
    assert not torch.allclose(leaky, alone, atol=1e-3)


def test_gradients_match_separate_sequences(models: tuple, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    plain, _ = models
    varlen = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation=packed_attention.NAME
    )
    sequences, row = _packed(LENGTHS)
    loss_alone = sum(plain(input_ids=s[None]).logits.square().sum() for s in sequences)
    loss_alone.backward()
    varlen(**row, use_cache=False).logits.square().sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), varlen.named_parameters(), strict=True):
        assert (a.grad - b.grad).norm() <= 1e-4 * a.grad.norm(), name
    plain.zero_grad()


def test_padded_batch_is_plain_sdpa(models: tuple, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    plain, varlen = models
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "left"
    batch = tokenizer(
        ["a short one", "a much longer prompt with more words in it"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        a = plain.generate(**batch, max_new_tokens=8, do_sample=False)
        b = varlen.generate(**batch, max_new_tokens=8, do_sample=False)
        logits_a = plain(**batch).logits
        logits_b = varlen(**batch).logits
    assert torch.equal(a, b)
    assert torch.allclose(logits_a, logits_b, atol=1e-5)


@pytest.mark.parametrize(
    "bounds, message",
    [
        ([0, 7, 20], "do not cover"),  # stops short of the 25-token row
        ([1, 7, 25], "do not cover"),  # does not start at 0
    ],
)
def test_boundaries_that_do_not_fit_the_row_are_refused(
    models: tuple, bounds: list[int], message: str
) -> None:
    _, varlen = models
    _, row = _packed(LENGTHS)
    row["cu_seq_lens_q"] = row["cu_seq_lens_k"] = torch.tensor(bounds, dtype=torch.int32)
    with torch.no_grad(), pytest.raises(ValueError, match=message):
        varlen(**row, use_cache=False)


def test_exported_model_does_not_name_it(models: tuple, tmp_path: Path) -> None:
    _, varlen = models
    varlen.save_pretrained(tmp_path / "out")
    assert packed_attention.NAME not in (tmp_path / "out" / "config.json").read_text()


@pytest.mark.parametrize(
    ("named", "expected"),
    [(None, packed_attention.NAME), (packed_attention.NAME, packed_attention.NAME)],
    ids=["default-when-packing", "named"],
)
def test_sft_packs_with_it_on_cpu(
    tiny_model_dir: Path, tmp_path: Path, named: str | None, expected: str
) -> None:
    """A packed SFT run through the project's trainer builder: batches arrive as one
    flattened row with boundaries, and the model trains on them. Packing with no
    kernel named picks ``sdpa_varlen``."""
    from transformers import TrainerCallback

    from secreason.train.config import SFTRecipe, build_recipe
    from secreason.train.sft import build_sft_trainer

    data = tmp_path / "sft.jsonl"
    with data.open("w") as fh:
        for i in range(24):
            reply = f"<think>\nitem {i} names a {'long ' * (i % 6)}clue.\n</think>\nAnswer: A"
            messages = [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": reply},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    seen: list[int] = []

    class Spy(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            seen.append(state.global_step)

    recipe = build_recipe(
        SFTRecipe,
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset_path": str(data),
            "output_dir": str(tmp_path / "run"),
            "max_steps": 3,
            "logging_steps": 1,
            "per_device_train_batch_size": 2,
            "max_length": 128,
            "packing": True,
            "model_init_kwargs": {"attn_implementation": named} if named else None,
            "assistant_only_loss": True,
            "bf16": False,
            "use_cpu": True,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
        },
        source="test",
    )
    trainer = build_sft_trainer(recipe, callbacks=[Spy()])
    assert trainer.model.config._attn_implementation == expected
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "cu_seq_lens_q" in batch
    assert len(batch["cu_seq_lens_q"]) > 3  # several sequences in the one row
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert seen == [1, 2, 3]
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses)


def test_a_named_kernel_is_kept(tiny_model_dir: Path, tmp_path: Path) -> None:
    from secreason.train.config import SFTRecipe, build_recipe
    from secreason.train.sft import build_sft_trainer

    data = tmp_path / "sft.jsonl"
    reply = {"role": "assistant", "content": "<think>\nclue\n</think>\nAnswer: A"}
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Q?"}, reply]}) + "\n")
    values = {
        "model_name_or_path": str(tiny_model_dir),
        "dataset_path": str(data),
        "output_dir": str(tmp_path / "run"),
        "packing": True,
        "model_init_kwargs": {"attn_implementation": "eager"},
        "bf16": False,
        "use_cpu": True,
        "report_to": [],
    }
    trainer = build_sft_trainer(build_recipe(SFTRecipe, values, source="test"))
    assert trainer.model.config._attn_implementation == "eager"
