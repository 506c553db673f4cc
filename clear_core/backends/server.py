"""An OpenAI-compatible server behind the Backend protocol: `--model http://HOST:PORT/v1` (for example `vllm serve`).

The rows are rendered here, with the model's own tokenizer and the transformers backend's rendering, and sent as
token-id prompts to /v1/completions, so the server scores exactly the ids the other engines score:
- teacher-forced response log-probs: `echo` + `logprobs: 0` + `max_tokens: 0` (the prompt tokens' log-probs);
- the reflection letters and the judges: the next token's log-probs of the candidate letters (`logprob_token_ids`,
  exact, where the server knows it as vLLM does; elsewhere the top 20, a letter outside them counting 0);
- generation: ordinary completions (n samples, seeded).
A completions server has no hidden states to give, so the embeddings come from a local transformers model (the
embedded one unless `embedder=` says otherwise).

Options ride on the URL's query, which is never sent: `?model=NAME&tokenizer=DIR_OR_HF_ID&concurrency=8&timeout=120
&retries=4&generate_only=1`. Only the standard library talks to the server: at most `concurrency` requests in flight,
`timeout` seconds each, retried with exponential backoff on connection errors, timeouts, 429 and 5xx.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ClearError
from .base import FusedOutput, Prompt, ScoreItem
from .hf import HFBackend

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
PROMPT_LOGPROB_SIGNALS = "likelihood, likelihood_min, likelihood_end, likelihood_ctx and ifd"


@dataclass(frozen=True)
class ServerOptions:
    """Where the server is and how to talk to it (parsed from the model spec)."""

    url: str                      # the API root, ending in /v1
    model: str | None = None      # the served model's name (default: the first of /v1/models)
    tokenizer: str | None = None  # a local dir or HF id of its tokenizer (default: the served model's name)
    embedder: str = "default"     # the load_backend spec of the local model that gives the embeddings
    timeout: float = 120.0        # seconds per request
    retries: int = 4              # further tries after a failed one
    backoff: float = 0.5          # seconds before the first retry, doubled each time
    concurrency: int = 8          # requests in flight at once
    top_logprobs: int = 20        # next-token alternatives asked for (the OpenAI API's maximum)
    generate_only: bool = False   # skip the prompt log-probs check: generation and letters only


def parse_spec(spec: str) -> ServerOptions:
    """`http(s)://HOST:PORT/v1?opt=value&...` -> ServerOptions; a URL not ending in /v1 gets it appended."""
    parts = urllib.parse.urlsplit(spec)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClearError(f"model '{spec}': a server is given as http(s)://HOST:PORT/v1")
    path = parts.path.rstrip("/")
    url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path if path.endswith("/v1") else path + "/v1", "", ""))
    kinds = {"model": str, "tokenizer": str, "embedder": str, "timeout": float, "retries": int, "backoff": float,
             "concurrency": int, "top_logprobs": int, "generate_only": lambda v: v.lower() in ("1", "true", "yes")}
    kw = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key not in kinds:
            raise ClearError(f"model '{spec}': unknown server option '{key}'; valid: {', '.join(kinds)}")
        try:
            kw[key] = kinds[key](value)
        except ValueError:
            raise ClearError(f"model '{spec}': server option {key}={value!r} is not a {kinds[key].__name__}") from None
    if kw.get("concurrency", 1) < 1 or kw.get("retries", 0) < 0 or kw.get("timeout", 1.0) <= 0:
        raise ClearError(f"model '{spec}': concurrency >= 1, retries >= 0 and timeout > 0 are needed")
    return ServerOptions(url=url, **kw)


class Client:
    """JSON over HTTP to one server: retries with exponential backoff, a timeout per request, bounded concurrency."""

    def __init__(self, opts: ServerOptions, sleep: Callable[[float], None] = time.sleep):
        self.opts, self._sleep = opts, sleep

    def request(self, path: str, body: dict | None = None) -> dict:
        """GET (body None) or POST `path` under the API root; the parsed JSON answer, or a one-line ClearError."""
        url = self.opts.url + path
        data = None if body is None else json.dumps(body).encode()
        last = ""
        for attempt in range(self.opts.retries + 1):
            if attempt:
                self._sleep(self.opts.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.opts.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:   # before URLError: HTTPError is one
                last = f"HTTP {exc.code}: {_message(exc)}"
                if exc.code not in RETRY_STATUS:
                    raise ClearError(f"server {url}: {last}") from None
            except (urllib.error.URLError, OSError) as exc:   # refused, reset, timed out
                reason = getattr(exc, "reason", exc)
                last = "timed out" if isinstance(reason, TimeoutError) else f"{type(reason).__name__}: {reason}"
            except json.JSONDecodeError:
                raise ClearError(f"server {url}: the answer is not JSON") from None
        raise ClearError(f"server {url}: no answer after {self.opts.retries + 1} tries ({_one_line(last)})")

    def map(self, fn: Callable, items: Sequence) -> list:
        """[fn(x) for x in items], at most `concurrency` at once, in order."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.opts.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        msg = body.get("error", body) if isinstance(body, dict) else body
        msg = msg.get("message", msg) if isinstance(msg, dict) else msg
    except (ValueError, OSError):
        msg = exc.reason
    return _one_line(str(msg))


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class TokenRendering:
    """The transformers backend's rendering (chat template, end of turn, follow-up questions, candidate letters) on
    a bare tokenizer, and the embeddings from a local model: an engine that only sees token ids scores exactly the
    ids the transformers backend scores."""

    # Borrowed, not copied: one rendering for every engine, so their scores can be compared token for token.
    _encode, _template, _end_of_turn_id = HFBackend._encode, HFBackend._template, HFBackend._end_of_turn_id
    render, suffix_ids, candidate_groups = HFBackend.render, HFBackend.suffix_ids, HFBackend.candidate_groups

    def __init__(self, tokenizer, name: str, embedder):
        self.tokenizer, self.name, self.embedder = tokenizer, name, embedder
        self.eot_id = self._end_of_turn_id()
        self.stop_ids = sorted({self.eot_id, tokenizer.eos_token_id} - {None})
        self._groups: dict = {}
        self._suffix_ids: dict = {}
        # Same vocabulary: the embedder reads the scored ids as they are; otherwise the text is rendered again.
        self._same_ids = embedder is not None and tokenizer.get_vocab() == embedder.tokenizer.get_vocab()

    def item_embeddings(self, items: Sequence[ScoreItem], layers: Sequence[int],
                        prompt_tail: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(prompt_emb, response_emb) of the items from the embedder (0 columns when no layer is asked for)."""
        if not layers or not items:
            return np.zeros((len(items), 0), np.float32), np.zeros((len(items), 0), np.float32)
        self._need_embedder()
        if not self._same_ids:
            def text(ids) -> str:
                return self.tokenizer.decode(list(ids), skip_special_tokens=True)
            items = [ScoreItem(*self.embedder.render(text(it.ids[:it.response_start]),
                                                     text(it.ids[it.response_start:]))) for it in items]
        out = self.embedder.forward_scores(items, (), embed_layers=layers, prompt_tail=prompt_tail)
        return out.prompt_emb, out.response_emb

    def embed(self, texts: Sequence[str], layers: Sequence[int] = (-1,)) -> np.ndarray:
        self._need_embedder()
        return self.embedder.embed(texts, layers)

    def _need_embedder(self) -> None:
        if self.embedder is None:
            raise ClearError(f"model {self.name}: loaded without an embedder, so it gives no embeddings")


def group_probs(logprobs: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """(n, n_groups) probabilities of candidate groups from (n, n_variants) variant log-probs, renormalised over the
    groups (the numpy twin of ops.group_softmax; -inf = a variant the server did not report)."""
    per_group = np.stack([np.logaddexp.reduce(logprobs[:, list(cols)], axis=1) for cols in groups], axis=1)
    per_group = per_group - per_group.max(axis=1, keepdims=True)
    p = np.exp(per_group)
    return p / p.sum(axis=1, keepdims=True)


class ServerBackend(TokenRendering):
    """A model behind an OpenAI-compatible /v1/completions endpoint (see the module docstring)."""

    device = "server"
    dtype = "server"
    n_params = 0  # not reported by the API

    def __init__(self, client: Client, model: str, tokenizer, embedder):
        super().__init__(tokenizer, f"{model} @ {client.opts.url}", embedder)
        self.client, self.model = client, model

    def _complete(self, body: dict) -> dict:
        answer = self.client.request("/completions", {"model": self.model, **body})
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not choices:
            raise ClearError(f"server {self.client.opts.url}: a completion came back without choices")
        return answer

    def prompt_logprobs(self, seqs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Per sequence, the log-prob of each token given those before it (NaN for the first)."""
        def one(ids):
            choice = self._complete({"prompt": list(ids), "echo": True, "logprobs": 0, "max_tokens": 0,
                                     "temperature": 0.0})["choices"][0]
            lp = (choice.get("logprobs") or {}).get("token_logprobs") or []
            if len(lp) < len(ids) or any(v is None for v in lp[1:len(ids)]):
                raise ClearError(no_prompt_logprobs(self.client.opts.url, self.model))
            return np.array([np.nan] + [float(v) for v in lp[1:len(ids)]], dtype=np.float64)
        return self.client.map(one, list(seqs))

    def letter_probs(self, seqs: Sequence[Sequence[int]], candidates: Sequence[str]) -> np.ndarray:
        """(n, len(candidates)) next-token probabilities of the candidates after each sequence."""
        token_ids, groups = self.candidate_groups(candidates)
        if not seqs:
            return np.zeros((0, len(candidates)))
        # vLLM keys the log-probs "token_id:ID" (return_tokens_as_token_ids); other servers by the token's text
        columns = {f"token_id:{t}": c for c, t in enumerate(token_ids)}
        columns.update({self.tokenizer.decode([t]): c for c, t in enumerate(token_ids)})

        def one(ids):
            choice = self._complete({"prompt": list(ids), "max_tokens": 1, "temperature": 0.0,
                                     "logprobs": self.client.opts.top_logprobs, "logprob_token_ids": token_ids,
                                     "return_tokens_as_token_ids": True})["choices"][0]
            tops = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
            row = np.full(len(token_ids), -np.inf)
            for key, value in (tops[0] or {}).items():
                if key in columns and value is not None:
                    row[columns[key]] = max(row[columns[key]], float(value))
            if np.isinf(row).all():
                raise ClearError(f"server {self.client.opts.url}: no log-probs for the candidates {list(candidates)}")
            return row
        return group_probs(np.stack(self.client.map(one, list(seqs))), groups)

    # ---- the Backend protocol -----------------------------------------------------------------------------------
    def forward_scores(self, items: Sequence[ScoreItem], suffixes: Sequence[str] = (),
                       candidates: Sequence[str] = ("A", "B", "C"), embed_layers: Sequence[int] = (-1,),
                       prompt_tail: int = 0) -> FusedOutput:
        lps = self.prompt_logprobs([it.ids for it in items])
        probs = np.zeros((len(items), len(suffixes), len(candidates)))
        for s, question in enumerate(suffixes):
            probs[:, s] = self.letter_probs([list(it.ids) + self.suffix_ids(question) for it in items], candidates)
        pe, re = self.item_embeddings(items, embed_layers, prompt_tail)
        # Counted as the other engines count them: each row once, then each question's tokens (the server's prefix
        # cache, when it has one, holds the row for its questions).
        n_tokens = sum(len(it.ids) for it in items) + len(items) * sum(len(self.suffix_ids(q)) for q in suffixes)
        return FusedOutput(response_logprobs=[lp[it.response_start:] for lp, it in zip(lps, items)],
                           prompt_emb=pe, response_emb=re, suffix_probs=probs, n_tokens=n_tokens)

    def token_logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[np.ndarray]:
        rendered = [self.render(p, c) for p, c in zip(prompts, continuations)]
        return [lp[start:] for lp, (_, start) in zip(self.prompt_logprobs([ids for ids, _ in rendered]), rendered)]

    def next_token_probs(self, prompts: Sequence[Prompt], candidates: Sequence[str],
                         answer_prefix: str = "") -> np.ndarray:
        tail = self._encode(answer_prefix) if answer_prefix else []
        return self.letter_probs([self.render(p)[0] + tail for p in prompts], candidates)

    def generate(self, prompts: Sequence[Prompt], n: int = 1, max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[list[str]]:
        """n answers per prompt: greedy at temperature 0 (one request, repeated n times), else n seeded samples
        from the full distribution."""
        greedy = temperature <= 0

        def one(ids):
            body = {"prompt": ids, "max_tokens": max_new_tokens, "temperature": 0.0 if greedy else float(temperature),
                    "top_p": 1.0, "n": 1 if greedy else n, "seed": seed, "stop_token_ids": self.stop_ids}
            choices = sorted(self._complete(body)["choices"], key=lambda c: c.get("index", 0))
            texts = [str(c.get("text", "")).strip() for c in choices]
            return texts * n if greedy else texts
        return self.client.map(one, [self.render(p)[0] for p in prompts])


def no_prompt_logprobs(url: str, model: str) -> str:
    """The one-line error for a server that gives log-probs of generated tokens only (llama.cpp, Ollama)."""
    return (f"server {url} (model {model}) returns no log-probs for prompt tokens (llama.cpp and Ollama give them for "
            f"generated tokens only), so {PROMPT_LOGPROB_SIGNALS} cannot be scored through it; generation "
            "(consistency, corrections), the next-token letters (reflection, the judge) and the embedding signals "
            "still work: add ?generate_only=1 to use it for those (e.g. as the corrections generator), and score "
            "with `vllm serve` or a local model")


def load(spec: str, device: str = "auto", dtype: str = "auto", cache_dir=None) -> ServerBackend:
    """Connect to the server of `spec`, load its tokenizer and the local embedder, and check (one tiny request)
    that it returns prompt log-probs unless generate_only."""
    from transformers import AutoTokenizer

    from . import load_backend

    opts = parse_spec(spec)
    client = Client(opts)
    model = opts.model
    if model is None:
        served = client.request("/models").get("data") or []
        if not served or "id" not in served[0]:
            raise ClearError(f"server {opts.url}: /models lists no model; add ?model=NAME")
        model = served[0]["id"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(opts.tokenizer or model, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing to the user
        raise ClearError(f"server model '{model}': its tokenizer could not be loaded here ({type(exc).__name__}); "
                         "add ?tokenizer=DIR_OR_HF_ID to the URL") from None
    backend = ServerBackend(client, model, tokenizer, load_backend(opts.embedder, device, dtype, cache_dir))
    if not opts.generate_only:
        backend.prompt_logprobs([backend.render("Hi", "Hello")[0]])
    return backend
