"""The OpenAI-compatible server backend against a fake server on 127.0.0.1 (no vLLM needed): retries with backoff,
the timeout, bounded concurrency, the one-line error of a server without prompt log-probs, the spec's options, and
scores equal to the transformers backend's when the fake answers from the same tiny model. The real engines (vLLM
offline and `vllm serve`) are tested in tests/engines/ (`make test-engines`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from clear_core.backends.server import Client, ServerBackend, parse_spec
from clear_core.errors import ClearError


class FakeServer(ThreadingHTTPServer):
    """An OpenAI-style /v1 on a free port. `model` (an HFBackend) answers the completions the way vLLM does;
    `statuses` are returned, in order, before any real answer; `delay` seconds pass before each answer;
    `style`: "vllm" (token-id keys, prompt log-probs), "text" (top log-probs keyed by token text, as servers
    without vLLM's extras give them), "llamacpp" (log-probs of generated tokens only)."""

    daemon_threads = True

    def __init__(self, model=None, statuses=(), delay=0.0, style="vllm"):
        super().__init__(("127.0.0.1", 0), Handler)
        self.model, self.statuses, self.delay, self.style = model, list(statuses), delay, style
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def logprobs(self, ids) -> np.ndarray:
        """(len(ids), vocab) log-softmax of the model's logits at each position."""
        logits = self.model.logits(ids).astype(np.float64)
        return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)

    def complete(self, body: dict) -> dict:
        ids, n = body["prompt"], int(body.get("n", 1))
        if body.get("echo") and self.style != "llamacpp":
            lp = self.logprobs(ids)
            token_lp = [None] + [float(lp[t - 1, ids[t]]) for t in range(1, len(ids))]
            return {"choices": [{"index": 0, "text": "", "logprobs": {"token_logprobs": token_lp}}]}
        if body.get("logprobs") is not None and body.get("max_tokens") == 1:
            last = self.logprobs(ids)[-1]
            if self.style == "vllm":
                top = {f"token_id:{t}": float(last[t]) for t in body.get("logprob_token_ids") or []}
            else:   # the whole vocabulary by text: exact, so the text mapping can be checked
                top = {self.model.tokenizer.decode([t]): float(last[t]) for t in range(len(last))}
            lp = {"token_logprobs": [-0.1], "top_logprobs": [top]}
            return {"choices": [{"index": 0, "text": "x", "logprobs": lp}]}
        if body.get("echo"):  # llama.cpp-like: only the generated token's log-prob
            return {"choices": [{"index": 0, "text": "x", "logprobs": {"token_logprobs": [-0.1]}}]}
        return {"choices": [{"index": i, "text": f" answer {i} to {len(ids)} ids, seed {body.get('seed')} "}
                            for i in reversed(range(n))]}


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body: dict | None) -> None:
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "body": body})
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            status = srv.statuses.pop(0) if srv.statuses else 200
        try:
            time.sleep(srv.delay)
            if status != 200:
                payload = {"error": {"message": f"fake failure {status}\nsecond line"}}
            elif self.path.endswith("/models"):
                payload = {"data": [{"id": "tiny-served"}]}
            else:
                with srv.lock:  # one model forward at a time
                    payload = srv.complete(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def do_GET(self):
        self._answer(None)

    def do_POST(self):
        self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))


@pytest.fixture
def fake(request):
    servers = []

    def start(**kw) -> FakeServer:
        srv = FakeServer(**kw)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv
    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def client(url: str, sleeps: list | None = None, **opts) -> Client:
    query = "&".join(f"{k}={v}" for k, v in opts.items())
    return Client(parse_spec(url + ("?" + query if query else "")),
                  sleep=sleeps.append if sleeps is not None else time.sleep)


def test_spec_options():
    opts = parse_spec("http://127.0.0.1:8000?model=m&tokenizer=/tok&concurrency=3&timeout=2.5&generate_only=1")
    assert opts.url == "http://127.0.0.1:8000/v1" and opts.model == "m" and opts.tokenizer == "/tok"
    assert opts.concurrency == 3 and opts.timeout == 2.5 and opts.generate_only and opts.retries == 4
    assert parse_spec("https://host/v1/").url == "https://host/v1"
    with pytest.raises(ClearError, match="unknown server option 'colour'; valid: model, tokenizer"):
        parse_spec("http://host/v1?colour=red")
    with pytest.raises(ClearError, match="timeout='soon' is not a float"):
        parse_spec("http://host/v1?timeout=soon")
    with pytest.raises(ClearError, match="concurrency >= 1"):
        parse_spec("http://host/v1?concurrency=0")


def test_retries_with_exponential_backoff(fake):
    srv = fake(statuses=[503, 502, 429])
    sleeps = []
    assert client(srv.url, sleeps, backoff=0.01).request("/models")["data"][0]["id"] == "tiny-served"
    assert len(srv.requests) == 4 and sleeps == [0.01, 0.02, 0.04]


def test_gives_up_in_one_line_after_the_last_retry(fake):
    srv = fake(statuses=[503] * 10)
    sleeps = []
    with pytest.raises(ClearError) as err:
        client(srv.url, sleeps, retries=2, backoff=0.01).request("/models")
    assert len(srv.requests) == 3 and sleeps == [0.01, 0.02]
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"server {srv.url}/models: no answer after 3 tries (HTTP 503")
    assert "fake failure 503 second line" in msg


def test_a_client_error_is_not_retried(fake):
    srv = fake(statuses=[400])
    with pytest.raises(ClearError, match=r"HTTP 400: fake failure 400 second line$"):
        client(srv.url, [], backoff=0.01).request("/models")
    assert len(srv.requests) == 1


def test_timeout_per_request(fake):
    srv = fake(delay=1.0)
    t = time.perf_counter()
    with pytest.raises(ClearError, match=r"no answer after 2 tries \(timed out\)"):
        client(srv.url, [], timeout=0.2, retries=1, backoff=0.01).request("/models")
    assert time.perf_counter() - t < 0.9 and len(srv.requests) == 2


def test_nothing_listening_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # closed again below: nobody listens there
    with pytest.raises(ClearError, match=r"no answer after 2 tries \(ConnectionRefusedError"):
        client(f"http://127.0.0.1:{port}/v1", [], retries=1, backoff=0.01).request("/models")


def test_concurrency_is_bounded(fake):
    srv = fake(delay=0.15)
    c = client(srv.url, concurrency=2)
    assert c.map(lambda i: (i, c.request("/models")["data"][0]["id"]), list(range(6))) == \
        [(i, "tiny-served") for i in range(6)]   # answers in input order
    assert srv.max_in_flight == 2


@pytest.fixture
def served_tiny(fake, tiny_backend):
    """A ServerBackend on a fake server that answers from the tiny model, and that model's own backend."""
    def make(style="vllm") -> tuple[ServerBackend, FakeServer]:
        srv = fake(model=tiny_backend, style=style)
        return ServerBackend(client(srv.url), "tiny-served", tiny_backend.tokenizer, tiny_backend), srv
    return make


def _rows(n=5):
    qs = ["What is 2 + 3?", "Name a primary colour.", "Say hello in French.", "Capital of France?", "Sentiment?"]
    return [([{"role": "user", "content": q}], f"Answer number {i}.") for i, q in enumerate(qs[:n])]


@pytest.mark.parametrize("style", ["vllm", "text"])
def test_scores_equal_the_transformers_backend(served_tiny, tiny_backend, style):
    from clear_core.scoring import prepare_item
    from clear_core.signals import reflection

    backend, srv = served_tiny(style)
    items = [prepare_item(tiny_backend, p, r, 256) for p, r in _rows()]
    a = tiny_backend.forward_scores(items, reflection.QUESTIONS, reflection.CANDIDATES, embed_layers=(1, -1))
    b = backend.forward_scores(items, reflection.QUESTIONS, reflection.CANDIDATES, embed_layers=(1, -1))
    for x, y in zip(a.response_logprobs, b.response_logprobs):
        assert x.shape == y.shape and np.allclose(x, y, atol=1e-4)
    assert np.allclose(a.suffix_probs, b.suffix_probs, atol=1e-4) and np.allclose(b.suffix_probs.sum(-1), 1)
    assert np.array_equal(a.prompt_emb, b.prompt_emb) and np.array_equal(a.response_emb, b.response_emb)
    assert b.n_tokens == a.n_tokens
    # one echo request per row, one next-token request per row and question; the prompts are the rendered ids
    bodies = [r["body"] for r in srv.requests]
    assert sum(bool(x.get("echo")) for x in bodies) == 5 and len(bodies) == 15
    assert sorted(tuple(x["prompt"]) for x in bodies if x.get("echo")) == sorted(it.ids for it in items)


def test_generation_requests(served_tiny):
    backend, srv = served_tiny()
    out = backend.generate([p for p, _ in _rows(2)], n=3, max_new_tokens=5, temperature=0.7, seed=11)
    assert [len(o) for o in out] == [3, 3] and out[0][0].startswith("answer 0 to") and out[0][2].startswith("answer 2")
    body = srv.requests[0]["body"]
    assert body["n"] == 3 and body["seed"] == 11 and body["temperature"] == 0.7 and body["max_tokens"] == 5
    assert body["stop_token_ids"] == backend.stop_ids
    greedy = backend.generate([p for p, _ in _rows(1)], n=2)
    assert srv.requests[-1]["body"]["n"] == 1 and greedy[0][0] == greedy[0][1]


def test_a_server_without_prompt_logprobs_says_what_still_works(fake, tiny_backend, tiny_model_dir):
    from clear_core.backends import load_backend

    srv = fake(model=tiny_backend, style="llamacpp")
    spec = f"{srv.url}?tokenizer={tiny_model_dir}&embedder={tiny_model_dir}"
    with pytest.raises(ClearError) as err:
        load_backend(spec)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"server {srv.url} (model tiny-served) returns no log-probs for prompt")
    assert "likelihood, likelihood_min, likelihood_end, likelihood_ctx and ifd cannot be scored" in msg
    assert "reflection" in msg and "consistency" in msg and "?generate_only=1" in msg
    backend = load_backend(spec + "&generate_only=1")       # generation and letters still work
    assert backend.generate(["Hi"], max_new_tokens=3)[0][0].startswith("answer 0")
    assert backend.next_token_probs(["Hi"], ["A", "B"]).shape == (1, 2)
    with pytest.raises(ClearError, match="returns no log-probs for prompt tokens"):
        backend.token_logprobs(["Hi"], ["Hello"])


def test_load_backend_reads_the_served_model_and_checks_it(fake, tiny_backend, tiny_model_dir):
    from clear_core.backends import load_backend

    srv = fake(model=tiny_backend)
    backend = load_backend(f"{srv.url}?tokenizer={tiny_model_dir}&embedder={tiny_model_dir}&concurrency=3")
    assert type(backend) is ServerBackend and backend.model == "tiny-served" and backend.client.opts.concurrency == 3
    assert [r["path"] for r in srv.requests] == ["/v1/models", "/v1/completions"]   # the prompt log-probs probe
    with pytest.raises(ClearError, match="its tokenizer could not be loaded here .*add \\?tokenizer="):
        load_backend(f"{srv.url}?tokenizer=/nonexistent/tokenizer&embedder={tiny_model_dir}")


def test_vllm_is_imported_only_when_chosen():
    code = "\n".join([
        "import sys",
        "import clear_core.backends, clear_core.backends.vllm, clear_core.backends.server, clear_core.pipeline",
        "from clear_core.errors import ClearError",
        "try:",
        "    clear_core.backends.load_backend('vllm:/nonexistent/model')",
        "except ClearError as e:",
        "    print(e)",
        "print('vllm' in sys.modules)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "model 'vllm:/nonexistent/model': not 'default' or a model dir with config.json and " \
                     ".safetensors files"
    assert out[1] == "False"
