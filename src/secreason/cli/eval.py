"""``secreason eval``: run benchmarks against a model, or score predictions made elsewhere.

Every run is resumable: generations go to ``OUT/cache`` as they are made, so the same
command after a crash or kill picks up where it stopped, and ``--rescore`` (or a
different ``--protocol``) scores again from the cache without loading a model.

This module declares the command's options and nothing else, so ``--help`` stays
cheap; the rest lives beside it: ``_eval_args`` (names, ``--set``, ``--data``),
``_eval_request`` (which option combinations make sense), ``_eval_run`` (preflight,
run, report), ``_eval_preflight``, ``_eval_list`` and ``_eval_general``.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        benchmarks: list[str] = typer.Argument(
            None,
            help="Benchmarks or suites (ctibench, cyber, safety, paper), module:Attr, or "
            "'none' (with --lm-eval or --alpaca-eval only). See --list.",
            show_default=False,
        ),
        list_: bool = typer.Option(
            False, "--list", help="List benchmarks, suites and (with --data) their files."
        ),
        model: str = typer.Option(None, "--model", "-m", help="Model dir, hub id or served name."),
        backend: str = typer.Option("transformers", "--backend", help="transformers|vllm|openai"),
        base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL."),
        tokenizer: str = typer.Option(
            None,
            "--tokenizer",
            help="openai: the served model's tokenizer (folder or hub id; default: --model "
            "when local) to clamp max_tokens to the server's max_model_len minus the "
            "longest prompt.",
        ),
        api_key: str = typer.Option(
            None,
            "--api-key",
            help="API key (default: $OPENAI_API_KEY).",
            envvar="SECREASON_API_KEY",
        ),
        revision: str = typer.Option(None, "--revision", help="Model revision (hub)."),
        trials: int = typer.Option(
            1,
            "--trials",
            min=1,
            help="Repeats with seeds S, S+1, ... (greedy benchmarks run once: same output).",
        ),
        seed: int = typer.Option(None, "--seed", help="Trial-0 seed (default: the protocol's)."),
        limit: int = typer.Option(None, "--limit", min=1, help="First K rows of each benchmark."),
        protocol: str = typer.Option("both", "--protocol", help="official|strict|both"),
        data: list[str] = typer.Option(
            [],
            "--data",
            help="Hub dataset id, file or folder; NAME=SOURCE for one benchmark or family "
            "(ctibench=../shared/benchmarks/ctibench). Repeatable.",
        ),
        temperature: float = typer.Option(
            None, "--temperature", help="Default: each benchmark's protocol (mostly 0, greedy)."
        ),
        top_p: float = typer.Option(None, "--top-p", help="Default: each benchmark's protocol."),
        max_tokens: int = typer.Option(
            None,
            "--max-tokens",
            help="Default: each benchmark's protocol; always clamped to the model's context "
            "minus the longest prompt.",
        ),
        prefilled: str = typer.Option(
            "auto", "--prefilled", help="Prompt ends inside <think>: auto|yes|no."
        ),
        reask: int = typer.Option(None, "--reask", help="Official re-asks on a bad format."),
        batch_size: int = typer.Option(None, "--batch-size", help="transformers/vllm batch."),
        concurrency: int = typer.Option(16, "--concurrency", help="openai: requests in flight."),
        request_timeout: float = typer.Option(600.0, "--timeout", help="openai: seconds/request."),
        max_retries: int = typer.Option(
            5, "--max-retries", help="openai: retries (backoff) on 429/5xx/timeouts."
        ),
        device: str = typer.Option(
            None, "--device", help="transformers: cpu, cuda, cuda:1... (default: cuda if any)."
        ),
        dtype: str = typer.Option(
            None, "--dtype", help="float32|bfloat16|float16|auto (auto: bf16 on CUDA, else fp32)."
        ),
        think_ids: str = typer.Option(
            None, "--think-ids", help="OPEN,CLOSE token ids when the tags are special tokens."
        ),
        set_: list[str] = typer.Option(
            [], "--set", help="Benchmark option KEY=VALUE (e.g. judge_kind=guard). Repeatable."
        ),
        option: list[str] = typer.Option(
            [], "--option", "-o", help="Deprecated alias of --set.", hidden=True
        ),
        server_system_prompt: str = typer.Option(
            None,
            "--server-system-prompt",
            help="openai: the server's system-prompt policy (replace|extend|client|off), "
            "recorded in run.json and the report when the server does not report it.",
        ),
        judge_model: str = typer.Option(None, "--judge-model", help="Judge for HarmBench."),
        judge_backend: str = typer.Option(
            None,
            "--judge-backend",
            help="The judge's backend (default: openai with --judge-base-url, else transformers).",
        ),
        judge_base_url: str = typer.Option(
            None, "--judge-base-url", help="OpenAI-compatible server of the judge."
        ),
        predictions: Path = typer.Option(
            None, "--predictions", help="Score this JSONL (id|index, completion); no model."
        ),
        lm_eval_tasks: str = typer.Option(
            None,
            "--lm-eval",
            help="General capability through lm-evaluation-harness, e.g. gsm8k,bbh,ifeval "
            "(needs the general extra); folded into the same report.",
        ),
        lm_eval_include: Path = typer.Option(
            None,
            "--lm-eval-include",
            help="Folder of extra lm-eval task YAML files (local data, e.g. HotpotQA).",
        ),
        alpaca_eval: Path = typer.Option(
            None,
            "--alpaca-eval",
            help="AlpacaEval 2.0 on these instructions (JSON/JSONL with 'instruction'); "
            "needs the general extra and --alpaca-judge.",
        ),
        alpaca_reference: Path = typer.Option(
            None,
            "--alpaca-reference",
            help="Reference outputs, same instructions in order (default: alpaca-eval's "
            "GPT-4-turbo outputs, from the hub).",
        ),
        alpaca_judge: str = typer.Option(
            None, "--alpaca-judge", help="AlpacaEval judge model (key: $OPENAI_API_KEY)."
        ),
        alpaca_judge_base_url: str = typer.Option(
            None, "--alpaca-judge-base-url", help="The judge's OpenAI-compatible server."
        ),
        alpaca_verdict: str = typer.Option(
            "logprobs",
            "--alpaca-verdict",
            help="logprobs (AlpacaEval 2.0's rule) or text (judges without log-probs).",
        ),
        alpaca_length_controlled: bool = typer.Option(
            True,
            "--alpaca-lc/--alpaca-raw",
            help="Length-controlled win rate (needs the hub's df_gamed.csv once) or raw.",
        ),
        rescore: bool = typer.Option(False, "--rescore", help="Score from the cache only."),
        skip_unavailable: bool = typer.Option(
            False,
            "--skip-unavailable",
            help="Run the benchmarks whose data is there and skip (and name) the others, "
            "instead of refusing.",
        ),
        shuffle_options: int = typer.Option(
            1,
            "--shuffle-options",
            help="Ask each multiple-choice item in K seeded option orders; adds "
            "consistency and accuracy by gold position.",
        ),
        fewshot: int = typer.Option(
            0,
            "--fewshot",
            help="N seeded solved items before each multiple-choice question (MMLU: its "
            "dev split; others: other rows of the same file).",
        ),
        mc_mode: str = typer.Option(
            "generate",
            "--mc-mode",
            help="generate; loglik: multiple choice from the option letters' "
            "log-probabilities after 'Answer:' (transformers backend, or an openai server "
            "that returns top_logprobs; nothing generated); "
            "think-then-loglik: generate the reasoning first, close it, then read them.",
        ),
        dedup: bool = typer.Option(
            False,
            "--dedup",
            help="Also score the de-duplicated set (same normalised prompt: first row kept; "
            "rows whose golds disagree left out), beside the full one.",
        ),
        out: Path = typer.Option(Path("runs/eval"), "--out", help="Output folder."),
    ) -> None:
        """Evaluate a model on benchmarks (resumable), or score a predictions file."""
        args = dict(locals())  # every option above, by its parameter name
        if list_:
            from secreason.cli._eval_args import parse_data
            from secreason.cli._eval_list import print_listing

            print_listing(parse_data(data), limit)
            return
        from secreason.cli._eval_request import EvalRequest
        from secreason.cli._eval_run import run

        run(EvalRequest(**args))
