"""`regret init-model DIR`: build a tiny causal LM with a locally trained tokenizer (no hub downloads).

The model is random (seeded), so it answers nonsense until fine-tuned; it exists so that the
text loop (litellm -> local server -> LoRA -> new checkpoint -> litellm) runs on any CPU.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("init-model", help="build a tiny local model for the text fine-tuning loop",
                                   description=__doc__)
    parser.add_argument("directory", metavar="DIR", help="where to write the model (created; must be empty)")
    parser.add_argument("--layers", type=int, default=2, help="transformer layers (default 2)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary size (default 2048)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation and warm-up (default 0)")
    parser.add_argument("--format-steps", type=int, default=150,
                        help="warm-up steps teaching the ANSWER line (default 150; 0: a purely random model)")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from finetune.init_model import TinyModelConfig, init_model

    config = TinyModelConfig(layers=args.layers, hidden=args.hidden, heads=args.heads,
                             vocab_size=args.vocab_size, seed=args.seed,
                             format_steps=args.format_steps)
    path = init_model(args.directory, config)
    print(f"model written to {path.resolve()}")
    print(f"play it with: regret run --agent openai/{path.resolve()} --api-base <server>/v1  "
          "(serve it with `transformers serve`)")
    return 0
