"""End to end: the official `openai` Python SDK against a running tierwise gateway.

The gateway must be backed by tierwise's mock upstream (answers are deterministic) and run the
default config. Usage:

    python tests/e2e/openai_sdk_e2e.py http://127.0.0.1:PORT/v1

Prints one line per check and exits 0 when all pass. The Rust test
`crates/tierwise-gateway/tests/e2e_openai_sdk.rs` starts the gateway + mock and runs this.
"""

import json
import sys
from decimal import Decimal

import openai
from openai import OpenAI

MINI = (Decimal("0.75"), Decimal("0.075"), Decimal("4.50"))  # USD per 1M: input, cached, output
QUESTION = "What is the capital of France?"


def expected_cost(prices, usage):
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    uncached = usage.prompt_tokens - cached
    total = uncached * prices[0] + cached * prices[1] + usage.completion_tokens * prices[2]
    return total / Decimal(1_000_000)


def check(name, cond, detail=""):
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok   {name}")


def main(base_url):
    client = OpenAI(base_url=base_url, api_key="sk-e2e-client", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": QUESTION}]

    # 1. Plain: model="auto", answered by the tier the router chose, decision in headers.
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
    completion = raw.parse()
    check("plain: ordinary ChatCompletion", completion.object == "chat.completion", completion)
    check("plain: routed to mini", raw.headers.get("x-tierwise-tier") == "mini", raw.headers)
    check("plain: answered by the mini model", completion.model == "gpt-5.4-mini", completion.model)
    check(
        "plain: answer text",
        completion.choices[0].message.content == f"Mock answer from gpt-5.4-mini to: {QUESTION}",
        completion.choices[0].message.content,
    )
    cost = Decimal(raw.headers["x-tierwise-cost-usd"])
    check("plain: exact cost header", cost == expected_cost(MINI, completion.usage), cost)
    baseline = Decimal(raw.headers["x-tierwise-baseline-cost-usd"])
    check("plain: baseline above cost", baseline > cost > 0, (baseline, cost))

    # 2. Streaming, chunk by chunk; no usage chunk unless asked for.
    stream = client.chat.completions.create(model="auto", messages=messages, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check("stream: several chunks", len(chunks) > 3, len(chunks))
    check("stream: same answer", text == completion.choices[0].message.content, text)
    check("stream: no usage chunk unasked", all(c.usage is None for c in chunks))
    stream = client.chat.completions.create(
        model="auto", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    check(
        "stream: usage chunk when asked",
        chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == completion.usage.prompt_tokens,
        chunks[-1],
    )

    # 3. Tools pass through; the answer is a tool call.
    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }]
    resp = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=tools,
    )
    call = resp.choices[0].message.tool_calls[0]
    check("tools: tool call returned", call.function.name == "get_weather", call)
    check("tools: arguments are JSON", json.loads(call.function.arguments) == {"city": "mock"})
    check("tools: finish_reason", resp.choices[0].finish_reason == "tool_calls")

    # 4. A forced tier, by header and by metadata.
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=messages, extra_headers={"x-tierwise-tier": "nano"}
    )
    check("forced: header", raw.parse().model == "gpt-5.4-nano", raw.parse().model)
    check("forced: reason", "forced" in raw.headers["x-tierwise-reason"], raw.headers["x-tierwise-reason"])
    resp = client.chat.completions.create(model="auto", messages=messages, metadata={"tier": "flagship"})
    check("forced: metadata", resp.model == "gpt-5.5", resp.model)
    resp = client.chat.completions.create(model="standard", messages=messages)
    check("explicit tier name", resp.model == "gpt-5.4", resp.model)

    # 5. Errors come back as the SDK's typed exceptions.
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        check("error: unknown model raises", False)
    except openai.NotFoundError as e:
        check("error: unknown model is a 404", e.status_code == 404 and e.code == "model_not_found", e)
    try:
        client.chat.completions.create(model="auto", messages=[])
        check("error: empty messages raises", False)
    except openai.BadRequestError as e:
        check("error: empty messages is a 400", e.status_code == 400 and e.param == "messages", e)

    # 6. The Responses API, plain and streamed.
    r = client.responses.create(model="auto", input=QUESTION)
    check("responses: output_text", r.output_text.startswith("Mock answer from gpt-5.4-mini"), r.output_text)
    events = list(client.responses.create(model="auto", input=QUESTION, stream=True))
    check("responses: stream completes", events[-1].type == "response.completed", events[-1].type)

    # 7. The model list.
    ids = {m.id for m in client.models.list()}
    check("models: auto and tiers", {"auto", "gpt-5.4-nano", "gpt-5.5"} <= ids, ids)

    # 8. Endpoints tierwise does not route are relayed: a Batch job via Files + Batches.
    line = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-5.4-nano", "messages": messages}}
    f = client.files.create(file=("in.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch")
    check("files: upload relayed", f.id.startswith("file") and f.purpose == "batch", f)
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    check("batches: create relayed", b.input_file_id == f.id, b)
    check("batches: retrieve relayed", client.batches.retrieve(b.id).id == b.id)
    print("all checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: openai_sdk_e2e.py BASE_URL")
    main(sys.argv[1])
