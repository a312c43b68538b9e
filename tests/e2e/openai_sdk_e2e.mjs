// End to end: the official `openai` Node SDK against a running tierwise gateway.
//
// The gateway must be backed by tierwise's mock upstream (answers are deterministic) and run the
// default config. Usage (after `npm ci` in this folder, which `scripts/test` runs):
//
//     node tests/e2e/openai_sdk_e2e.mjs http://127.0.0.1:PORT/v1
//
// Prints one line per check and "all checks passed"; exits 1 at the first failed check. The Rust
// test `crates/tierwise-gateway/tests/e2e_openai_node.rs` starts the gateway + mock and runs this.

import OpenAI from "openai";

// USD per 1M tokens of the mini tier (gpt-5.4-mini): input, cached input, output, in units of
// 1e-10 USD per token so sums stay exact integers.
const MINI = [7500n, 750n, 45000n];
const QUESTION = "What is the capital of France?";

function check(name, cond, detail = "") {
  if (!cond) {
    throw new Error(`${name}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  console.log(`ok   ${name}`);
}

/** A decimal USD string ("0.0000123") as an exact count of 1e-10 USD. */
function units(usd) {
  const [whole, frac = ""] = usd.split(".");
  if (frac.length > 10) throw new Error(`more than 10 decimals: ${usd}`);
  return BigInt(whole) * 10_000_000_000n + BigInt(frac.padEnd(10, "0"));
}

/** Exact cost of a usage object (chat or Responses shape) at `prices`, in 1e-10 USD. */
function expectedCost(prices, usage) {
  const input = BigInt(usage.prompt_tokens ?? usage.input_tokens);
  const output = BigInt(usage.completion_tokens ?? usage.output_tokens);
  const details = usage.prompt_tokens_details ?? usage.input_tokens_details ?? {};
  const cached = BigInt(details.cached_tokens ?? 0);
  return (input - cached) * prices[0] + cached * prices[1] + output * prices[2];
}

async function main(baseURL) {
  const client = new OpenAI({ baseURL, apiKey: "sk-e2e-client", maxRetries: 0, timeout: 30_000 });
  const messages = [{ role: "user", content: QUESTION }];

  // 1. Plain: model="auto", answered by the tier the router chose, decision and cost in headers.
  const { data: completion, response } = await client.chat.completions
    .create({ model: "auto", messages })
    .withResponse();
  check("plain: ordinary ChatCompletion", completion.object === "chat.completion", completion);
  check("plain: routed to mini", response.headers.get("x-tierwise-tier") === "mini");
  check("plain: answered by the mini model", completion.model === "gpt-5.4-mini", completion.model);
  const answer = `Mock answer from gpt-5.4-mini to: ${QUESTION}`;
  check("plain: answer text", completion.choices[0].message.content === answer);
  const cost = units(response.headers.get("x-tierwise-cost-usd"));
  check("plain: exact cost header", cost === expectedCost(MINI, completion.usage), `${cost}`);
  const baseline = units(response.headers.get("x-tierwise-baseline-cost-usd"));
  check("plain: baseline above cost", baseline > cost && cost > 0n);

  // 2. Streaming, chunk by chunk; a usage chunk only when asked for.
  let chunks = [];
  for await (const c of await client.chat.completions.create({ model: "auto", messages, stream: true })) {
    chunks.push(c);
  }
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  check("stream: several chunks", chunks.length > 3, `${chunks.length}`);
  check("stream: same answer", text === answer, text);
  check("stream: no usage chunk unasked", chunks.every((c) => !c.usage));
  chunks = [];
  const withUsage = await client.chat.completions.create({
    model: "auto",
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const c of withUsage) chunks.push(c);
  const last = chunks[chunks.length - 1];
  check(
    "stream: usage chunk when asked",
    last.usage && last.usage.prompt_tokens === completion.usage.prompt_tokens,
    last,
  );

  // 3. Tools pass through; the answer is a tool call.
  const tools = [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Current weather for a city",
        parameters: {
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
        },
      },
    },
  ];
  const withTools = await client.chat.completions.create({
    model: "auto",
    messages: [{ role: "user", content: "What's the weather in Paris?" }],
    tools,
  });
  const call = withTools.choices[0].message.tool_calls[0];
  check("tools: tool call returned", call.function.name === "get_weather", call);
  check("tools: arguments are JSON", JSON.parse(call.function.arguments).city === "mock");
  check("tools: finish_reason", withTools.choices[0].finish_reason === "tool_calls");

  // 4. The Responses API: plain, priced exactly from its usage, and streamed event by event.
  const { data: r, response: rr } = await client.responses
    .create({ model: "auto", input: QUESTION })
    .withResponse();
  check("responses: output_text", r.output_text === answer, r.output_text);
  check("responses: usage shape", typeof r.usage.input_tokens_details?.cached_tokens === "number", r.usage);
  check(
    "responses: exact cost header",
    units(rr.headers.get("x-tierwise-cost-usd")) === expectedCost(MINI, r.usage),
    rr.headers.get("x-tierwise-cost-usd"),
  );
  const events = [];
  for await (const e of await client.responses.create({ model: "auto", input: QUESTION, stream: true })) {
    events.push(e);
  }
  const types = events.map((e) => e.type);
  check("responses stream: opens with response.created", types[0] === "response.created", types);
  check("responses stream: ends with response.completed", types.at(-1) === "response.completed", types);
  const shape = [...new Set(types)];
  check(
    "responses stream: event types passed through in order",
    JSON.stringify(shape) ===
      JSON.stringify([
        "response.created",
        "response.output_item.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_item.done",
        "response.completed",
      ]),
    shape,
  );
  check(
    "responses stream: sequence numbers unchanged",
    events.every((e, i) => e.sequence_number === i),
    events.map((e) => e.sequence_number),
  );
  const streamed = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join("");
  check("responses stream: same text", streamed === answer, streamed);

  // 5. Errors come back as the SDK's typed exceptions.
  try {
    await client.chat.completions.create({ model: "no-such-model", messages });
    check("error: unknown model raises", false);
  } catch (e) {
    check(
      "error: unknown model is a NotFoundError 404",
      e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === "model_not_found",
      `${e}`,
    );
  }
  try {
    await client.chat.completions.create({ model: "auto", messages: [] });
    check("error: empty messages raises", false);
  } catch (e) {
    check(
      "error: empty messages is a BadRequestError 400",
      e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "messages",
      `${e}`,
    );
  }

  // 6. The model list.
  const ids = new Set();
  for await (const m of client.models.list()) ids.add(m.id);
  check("models: auto and tiers", ["auto", "gpt-5.4-nano", "gpt-5.5"].every((id) => ids.has(id)), [...ids]);

  console.log("all checks passed");
}

if (process.argv.length !== 3) {
  console.error("usage: node openai_sdk_e2e.mjs BASE_URL");
  process.exit(2);
}
main(process.argv[2]).catch((e) => {
  console.error(`FAILED ${e.message}`);
  process.exit(1);
});
