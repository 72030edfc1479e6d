"""Reference pre-tokenization by Hugging Face `tokenizers`, for recode's GGUF tokenizer tests.

Reads a JSON request on stdin:
  {"strings": [...], "qwen_tokenizer": "path/to/tokenizer.json",
   "merges_case": {"vocab": {token: id}, "merges": ["a b", ...], "strings": [...]}}
and writes on stdout:
  {"splits": {pre name: [[piece, ...] per string]},   # byte-level pieces, as pre_tokenize_str gives
   "qwen_ids": [[id, ...] per string],                 # full encode by the real Qwen tokenizer.json
   "merges_case_ids": [[id, ...] per string]}          # Llama 3 BPE on a tiny vocab

The pre-tokenizers are the real ones, never recode's: Qwen2's is read from the model's own
tokenizer.json; Llama 3's and GPT-2's are Split pre-tokenizers on the regexes those models were
published with (Meta's llama3 tokenizer.py `pat_str`, OpenAI's gpt-2 encoder.py); SmolLM's applies
llama.cpp's two regexes for the `smollm` pre-type (each number character alone, then GPT-2's).
The merges case builds Llama 3's BPE as its tokenizer.json does (`ignore_merges`: a pre-token that
is a whole vocabulary entry is not merged; llama.cpp sets the same for llama-bpe).
"""

import json
import sys

from tokenizers import Regex, Tokenizer, models, pre_tokenizers

# meta-llama/llama3, llama/tokenizer.py
LLAMA3_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# openai/gpt-2, src/encoder.py
GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def split(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def byte_level():
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)


def main():
    req = json.load(sys.stdin)
    qwen = Tokenizer.from_file(req["qwen_tokenizer"])
    llama3 = pre_tokenizers.Sequence([split(LLAMA3_PAT), byte_level()])
    pres = {
        "qwen2": qwen.pre_tokenizer,
        "llama-bpe": llama3,
        "gpt-2": pre_tokenizers.Sequence([split(GPT2_PAT), byte_level()]),
        "smollm": pre_tokenizers.Sequence([split(r"\p{N}"), split(GPT2_PAT), byte_level()]),
    }
    strings = req["strings"]
    out = {
        "splits": {
            name: [[piece for piece, _ in pre.pre_tokenize_str(s)] for s in strings]
            for name, pre in pres.items()
        },
        "qwen_ids": [qwen.encode(s, add_special_tokens=False).ids for s in strings],
    }
    case = req.get("merges_case")
    if case:
        merges = [tuple(m.split(" ")) for m in case["merges"]]
        tok = Tokenizer(models.BPE(case["vocab"], merges, ignore_merges=True))
        tok.pre_tokenizer = llama3
        out["merges_case_ids"] = [tok.encode(s, add_special_tokens=False).ids for s in case["strings"]]
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
