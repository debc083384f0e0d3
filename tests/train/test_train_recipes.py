"""The 8B recipes and accelerate configs build real trainer objects (tiny model substituted).

A typo in a GPU recipe must fail here, on a CPU in seconds, not hours into a GPU job.
What is substituted is only what a CPU cannot do: the model (tiny), bf16, flash
attention, vLLM and the Llama-3 end-of-turn token the tiny vocabulary lacks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from secreason.train.config import RLRecipe, SFTRecipe, load_recipe

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes" / "foundation-sec-8b-reasoning"
PROMPT = "Which tactic does running encoded powershell serve?\n\nA) execution\nB) impact"
TRACE = "<think>\nEncoded powershell runs code, that is execution.\n</think>\nAnswer: A"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    user = [{"role": "user", "content": PROMPT}]
    rows = [{"messages": [*user, {"role": "assistant", "content": TRACE}]}] * 8
    (folder / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rl = [{"prompt": user, "task": "mcq", "reference": "A"}] * 10
    (folder / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rl))
    return folder


def cpu_overrides(model: Path, data: Path, out: Path) -> list[str]:
    return [
        f"model_name_or_path={model}",
        f"dataset_path={data}",
        f"output_dir={out}",
        "bf16=false",
        "use_cpu=true",
        "model_init_kwargs={}",
        "dataloader_num_workers=0",
    ]


def test_8b_sft_recipe_builds_its_trainer(tiny_model_dir: Path, data: Path, tmp_path: Path) -> None:
    from secreason.train.sft import build_sft_trainer

    overrides = [
        *cpu_overrides(tiny_model_dir, data / "sft.jsonl", tmp_path),
        "eos_token=<|end|>",
        "max_length=256",
    ]
    recipe = load_recipe(RECIPE_DIR / "sft.yaml", SFTRecipe, overrides)
    trainer = build_sft_trainer(recipe)
    assert type(trainer).__name__ == "SFTTrainer"
    assert trainer.args.packing and trainer.args.assistant_only_loss
    # The recipe's Llama-3.1 chat template was installed and prefills the reasoning.
    rendered = trainer.processing_class.apply_chat_template(
        [{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n<think>\n")
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] != -100).any()


def test_8b_rl_recipe_builds_its_trainer(tiny_model_dir: Path, data: Path, tmp_path: Path) -> None:
    from secreason.train.rl import build_rl_trainer

    overrides = [
        *cpu_overrides(tiny_model_dir, data / "rl.jsonl", tmp_path),
        "use_vllm=false",
        "max_completion_length=16",
    ]
    recipe = load_recipe(RECIPE_DIR / "rl.yaml", RLRecipe, overrides)
    trainer = build_rl_trainer(recipe)
    assert type(trainer).__name__ == "GRPOTrainer"
    assert trainer.num_generations == 5 and trainer.beta == 0.02 and trainer.loss_type == "grpo"
    assert trainer.ref_model is not None  # beta > 0: a KL reference loaded from the saved path
    assert trainer.reward_func_names == ["mcq_reward", "format_reward"]
    assert trainer.args.reward_weights == [1.0, recipe.format_penalty]


@pytest.mark.parametrize(
    ("name", "kind"),
    [("zero3.yaml", "DEEPSPEED"), ("fsdp2.yaml", "FSDP")],
)
def test_accelerate_configs_parse(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(RECIPE_DIR / "accelerate" / name))
    assert config.distributed_type.value == kind
    assert config.mixed_precision == "bf16"
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    else:
        assert config.deepspeed_config["zero_stage"] == 3
        assert config.deepspeed_config["zero3_save_16bit_model"] is True


def test_fsdp2_config_builds_an_accelerate_fsdp2_plugin() -> None:
    """The FSDP block turns into accelerate's own plugin (what `accelerate launch` does)."""
    from accelerate.utils import FullyShardedDataParallelPlugin

    raw = yaml.safe_load((RECIPE_DIR / "accelerate" / "fsdp2.yaml").read_text())
    fsdp = {k.removeprefix("fsdp_"): v for k, v in raw["fsdp_config"].items()}
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=fsdp["version"],
        auto_wrap_policy=fsdp["auto_wrap_policy"].lower(),
        reshard_after_forward=fsdp["reshard_after_forward"],
        state_dict_type=fsdp["state_dict_type"],
        cpu_ram_efficient_loading=fsdp["cpu_ram_efficient_loading"],
        activation_checkpointing=fsdp["activation_checkpointing"],
    )
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
