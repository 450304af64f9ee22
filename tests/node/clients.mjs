// One call of a real Node.js client against an OpenAI-compatible base URL (in the tests: the
// mistral-compat reverse proxy in front of the fake Mistral), printing ONE JSON line with what the
// client saw. Driven by tests/test_clients_node.py and tests/test_redirect_e2e.py.
//
//   node clients.mjs SCENARIO BASE_URL MODEL PROMPT [OPTIONS_JSON]
//   node clients.mjs --batch BASE_URL < jobs.jsonl     (one {"id","scenario","model","prompt","options"} a line;
//                                                         prints one result line per job, with its "id")
//
// Scenarios:
//   openai-create        openai-node chat.completions.create, not streamed
//   openai-stream        openai-node create({stream: true}) and `for await (const chunk of stream)`
//   openai-helper        openai-node chat.completions.stream(...).finalChatCompletion()
//   ai-openai-generate   Vercel AI SDK generateText with @ai-sdk/openai createOpenAI(...).chat(model)
//   ai-openai-stream     the same with streamText
//   ai-compat-generate   generateText with @ai-sdk/openai-compatible createOpenAICompatible(...)
//   ai-compat-stream     the same with streamText
//   openai-embeddings    openai-node embeddings.create({model, input: [PROMPT, PROMPT + "!"]}) (the client's
//                        default encoding, base64, decoded by the client)
//   openai-responses     openai-node responses.create({model, input: PROMPT})
//   openai-responses-stream  the same with stream: true, the output_text deltas joined
//   openai-models        openai-node models.list() (every page) and models.retrieve(MODEL)
//   openai-images        openai-node images.generate({model: MODEL, prompt: PROMPT})
//
// BASE_URL "default" gives the openai-node scenarios no baseURL: the client's own default,
// https://api.openai.com/v1 (OPENAI_BASE_URL unset). With HTTPS_PROXY (or https_proxy) set, every request
// goes through that proxy (undici's ProxyAgent as fetch's global dispatcher: Node 20's fetch reads no proxy
// variable; undici is installed as a dependency of the AI SDK); NODE_EXTRA_CA_CERTS makes Node trust the
// proxy's CA.
//
// OPTIONS_JSON (all optional):
//   tools: "pair"      two tools without execute: get_weather {city} and get_forecast {city, days, units}
//          "weather"   one tool get_weather {city: string} (zod) whose execute returns "sunny in " + city;
//                      the AI SDK scenarios then run a multi-step loop (stopWhen: stepCountIs(3))
//   error: NAME        sends the request header x-fake-error: NAME (the fake answers Mistral's error body)
//   effort: "high"     sends reasoning_effort (openai-node) / providerOptions reasoningEffort (AI SDK)
//   apiKey: KEY        the openai-node scenarios' API key (default: API_KEY below)
//
// Output: {"scenario", "text", "reasoning", "finishReason", "toolCalls": [{id, type, name, arguments}]
// (type: openai-node's tool_call.type; null for the AI SDK),
// "error": null | {name, class, status, message, hasData, type, code, cause}, ...scenario extras}.
// The process exits 0 whenever the client call ran (an API error is an outcome to print), 2 on a usage error.

import OpenAI from "openai";
import { generateText, streamText, stepCountIs, tool, jsonSchema } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { z } from "zod";

const API_KEY = "sk-node-clients-test-0123456789";
const TIMEOUT_MS = 20000;

const PAIR_SCHEMAS = {
  get_weather: {
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
  },
  get_forecast: {
    type: "object",
    properties: {
      city: { type: "string" },
      days: { type: "integer" },
      units: { type: "string", enum: ["celsius", "fahrenheit"] },
    },
    required: ["city", "days", "units"],
  },
};

function usage(message) {
  process.stderr.write(`${message}\nusage: node clients.mjs SCENARIO BASE_URL MODEL PROMPT [OPTIONS_JSON]\n`);
  process.exit(2);
}

function emit(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

function describeError(e) {
  if (e == null) return null;
  const status = e.status ?? e.statusCode ?? e.lastError?.statusCode ?? null;
  return {
    name: e.name ?? "Error",
    class: e.constructor?.name ?? null,
    status,
    message: String(e.message ?? e).slice(0, 4000),
    // AI SDK: `data` is set only when the body matched the OpenAI error schema ({"error": {"message"...}});
    // openai-node: `error` is the body's `error` object, undefined when the body has none.
    hasData: e.data != null || (e.error != null && typeof e.error === "object"),
    type: e.type ?? e.data?.error?.type ?? null,
    code: e.code ?? e.data?.error?.code ?? null,
    cause: e.cause?.message ? String(e.cause.message).slice(0, 500) : null,
  };
}

function parseArgs(text) {
  if (typeof text !== "string") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text; // shown as sent, so a test can see what was wrong
  }
}

// ---------------------------------------------------------------------------
// openai-node

function openaiTools(kind) {
  if (kind === "pair") {
    return Object.entries(PAIR_SCHEMAS).map(([name, parameters]) => ({
      type: "function",
      function: { name, description: `The ${name.slice(4)} in a city`, parameters },
    }));
  }
  if (kind === "weather") {
    return [{ type: "function", function: { name: "get_weather", parameters: PAIR_SCHEMAS.get_weather } }];
  }
  return undefined;
}

function openaiCalls(calls) {
  return (calls ?? []).map((c) => ({
    id: c?.id ?? null,
    type: c?.type ?? null,
    name: c?.function?.name ?? null,
    arguments: parseArgs(c?.function?.arguments),
  }));
}

function openaiRequest(model, prompt, options) {
  const body = { model, messages: [{ role: "user", content: prompt }], max_completion_tokens: 256 };
  const tools = openaiTools(options.tools);
  if (tools) body.tools = tools;
  if (options.effort) body.reasoning_effort = options.effort;
  return body;
}

function openaiClient(baseURL, options) {
  const defaultHeaders = options.error ? { "x-fake-error": options.error } : undefined;
  return new OpenAI({
    apiKey: options.apiKey ?? API_KEY,
    baseURL: baseURL === "default" ? undefined : baseURL,
    maxRetries: 0,
    timeout: TIMEOUT_MS,
    defaultHeaders,
  });
}

async function openaiCreate(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const completion = await client.chat.completions.create(openaiRequest(model, prompt, options));
  const choice = completion.choices[0];
  return {
    text: choice.message.content ?? null,
    reasoning: choice.message.reasoning_content ?? null,
    finishReason: choice.finish_reason,
    toolCalls: openaiCalls(choice.message.tool_calls),
  };
}

async function openaiStream(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const stream = await client.chat.completions.create({ ...openaiRequest(model, prompt, options), stream: true });
  let text = "";
  let reasoning = "";
  let finishReason = null;
  const calls = []; // accumulated by index, as the OpenAI docs do
  const contentTypes = new Set();
  const callsWithoutIndex = [];
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    const delta = choice.delta ?? {};
    if (delta.content != null) contentTypes.add(Array.isArray(delta.content) ? "array" : typeof delta.content);
    text += delta.content ?? "";
    reasoning += delta.reasoning_content ?? "";
    for (const call of delta.tool_calls ?? []) {
      if (typeof call.index !== "number") {
        callsWithoutIndex.push(call);
        continue;
      }
      const slot = (calls[call.index] ??= { id: null, type: null, function: { name: "", arguments: "" } });
      if (call.id) slot.id = call.id;
      if (call.type) slot.type = call.type;
      if (call.function?.name) slot.function.name += call.function.name;
      if (call.function?.arguments) slot.function.arguments += call.function.arguments;
    }
    if (choice.finish_reason) finishReason = choice.finish_reason;
  }
  return {
    text,
    reasoning: reasoning || null,
    finishReason,
    toolCalls: openaiCalls(calls.filter(Boolean)),
    chunks,
    contentTypes: [...contentTypes].sort(),
    callsWithoutIndex: callsWithoutIndex.length,
  };
}

async function openaiHelper(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const runner = client.chat.completions.stream(openaiRequest(model, prompt, options));
  let deltas = "";
  let chunkReasoning = "";
  runner.on("content", (delta) => {
    deltas += typeof delta === "string" ? delta : JSON.stringify(delta);
  });
  runner.on("chunk", (chunk) => {
    chunkReasoning += chunk.choices?.[0]?.delta?.reasoning_content ?? "";
  });
  const completion = await runner.finalChatCompletion();
  const choice = completion.choices[0];
  return {
    text: choice.message.content,
    // The helper accumulates only the fields it knows: reasoning_content is read from its "chunk" events.
    reasoning: chunkReasoning || null,
    // It copies unknown delta fields with Object.assign: the message keeps the LAST delta's reasoning_content.
    messageReasoning: choice.message.reasoning_content ?? null,
    finishReason: choice.finish_reason,
    toolCalls: openaiCalls(choice.message.tool_calls),
    contentEvents: deltas,
  };
}

async function openaiEmbeddings(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const result = await client.embeddings.create({ model, input: [prompt, prompt + "!"] });
  return {
    baseURL: client.baseURL,
    model: result.model,
    dimensions: result.data.map((d) => (Array.isArray(d.embedding) ? d.embedding.length : typeof d.embedding)),
    finite: result.data.every((d) => Array.isArray(d.embedding) && d.embedding.every(Number.isFinite)),
  };
}

async function openaiResponses(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const response = await client.responses.create({ model, input: prompt });
  return { baseURL: client.baseURL, text: response.output_text, status: response.status, model: response.model };
}

async function openaiResponsesStream(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const stream = await client.responses.create({ model, input: prompt, stream: true });
  let text = "";
  const types = [];
  let status = null;
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "response.output_text.delta") text += event.delta;
    if (event.type === "response.completed") status = event.response.status;
  }
  return { baseURL: client.baseURL, text, status, eventTypes: [...new Set(types)] };
}

async function openaiModels(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const models = [];
  for await (const m of client.models.list()) models.push(m.id);
  const one = await client.models.retrieve(model);
  return {
    baseURL: client.baseURL,
    models,
    retrieved: { id: one.id, object: one.object, owned_by: one.owned_by, mistral_model: one.mistral_model ?? null },
  };
}

async function openaiImages(baseURL, model, prompt, options) {
  const client = openaiClient(baseURL, options);
  const result = await client.images.generate({ model, prompt });
  return { baseURL: client.baseURL, text: JSON.stringify(result).slice(0, 500) };
}

// ---------------------------------------------------------------------------
// Vercel AI SDK

function aiTools(kind) {
  if (kind === "pair") {
    return Object.fromEntries(
      Object.entries(PAIR_SCHEMAS).map(([name, schema]) => [
        name,
        tool({ description: `The ${name.slice(4)} in a city`, inputSchema: jsonSchema(schema) }),
      ]),
    );
  }
  if (kind === "weather") {
    return {
      get_weather: tool({
        description: "The weather in a city",
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => "sunny in " + city,
      }),
    };
  }
  return undefined;
}

function aiModel(provider, baseURL, model) {
  if (provider === "openai") {
    return createOpenAI({ baseURL, apiKey: API_KEY }).chat(model);
  }
  return createOpenAICompatible({ name: "mistral", baseURL, apiKey: API_KEY })(model);
}

function aiCall(provider, baseURL, model, prompt, options) {
  const call = { model: aiModel(provider, baseURL, model), prompt, maxRetries: 0, maxOutputTokens: 256 };
  const tools = aiTools(options.tools);
  if (tools) call.tools = tools;
  if (options.tools === "weather") call.stopWhen = stepCountIs(3);
  if (options.error) call.headers = { "x-fake-error": options.error };
  if (options.effort) {
    call.providerOptions = provider === "openai"
      ? { openai: { reasoningEffort: options.effort } }
      : { mistral: { reasoningEffort: options.effort } };
  }
  call.abortSignal = AbortSignal.timeout(TIMEOUT_MS);
  return call;
}

function aiCalls(calls) {
  return (calls ?? []).map((c) => ({
    id: c.toolCallId ?? null,
    type: null, // the AI SDK has no wire type to show
    name: c.toolName,
    arguments: parseArgs(c.input),
  }));
}

async function aiGenerate(provider, baseURL, model, prompt, options) {
  const result = await generateText(aiCall(provider, baseURL, model, prompt, options));
  return {
    text: result.text,
    reasoning: result.reasoningText ?? null,
    finishReason: result.finishReason,
    rawFinishReason: result.rawFinishReason ?? null,
    toolCalls: aiCalls(result.toolCalls),
    steps: result.steps.length,
    toolResults: result.steps.flatMap((s) => s.toolResults.map((r) => r.output)),
  };
}

async function aiStream(provider, baseURL, model, prompt, options) {
  const errors = [];
  const result = streamText({
    ...aiCall(provider, baseURL, model, prompt, options),
    onError: ({ error }) => errors.push(error),
  });
  let streamedText = "";
  let streamedReasoning = "";
  const streamedCalls = [];
  const toolResults = [];
  let steps = 0;
  for await (const part of result.fullStream) {
    if (part.type === "text-delta") streamedText += part.text;
    else if (part.type === "reasoning-delta") streamedReasoning += part.text;
    else if (part.type === "tool-call") streamedCalls.push(part);
    else if (part.type === "tool-result") toolResults.push(part.output);
    else if (part.type === "finish-step") steps += 1;
    else if (part.type === "error") errors.push(part.error);
  }
  if (errors.length) throw errors[0];
  // The final step's values, as an app reads them after the stream.
  const text = await result.text;
  const reasoning = await result.reasoningText;
  return {
    text,
    reasoning: reasoning ?? null,
    finishReason: await result.finishReason,
    rawFinishReason: (await result.rawFinishReason) ?? null,
    toolCalls: aiCalls(await result.toolCalls),
    steps,
    toolResults,
    streamedText,
    streamedReasoning,
    streamedToolCalls: aiCalls(streamedCalls),
  };
}

// ---------------------------------------------------------------------------

const SCENARIOS = {
  "openai-create": openaiCreate,
  "openai-stream": openaiStream,
  "openai-helper": openaiHelper,
  "ai-openai-generate": (...a) => aiGenerate("openai", ...a),
  "ai-openai-stream": (...a) => aiStream("openai", ...a),
  "ai-compat-generate": (...a) => aiGenerate("compat", ...a),
  "ai-compat-stream": (...a) => aiStream("compat", ...a),
  "openai-embeddings": openaiEmbeddings,
  "openai-responses": openaiResponses,
  "openai-responses-stream": openaiResponsesStream,
  "openai-models": openaiModels,
  "openai-images": openaiImages,
};

function parseOptions(json) {
  try {
    return json ? JSON.parse(json) : {};
  } catch (e) {
    usage(`OPTIONS_JSON is not JSON: ${e.message}`);
  }
}

async function runOne(scenario, baseURL, model, prompt, options) {
  const base = { scenario, text: null, reasoning: null, finishReason: null, toolCalls: [], error: null };
  try {
    return { ...base, ...(await SCENARIOS[scenario](baseURL, model, prompt, options ?? {})) };
  } catch (e) {
    return { ...base, error: describeError(e) };
  }
}

async function readStdin() {
  let data = "";
  for await (const piece of process.stdin) data += piece;
  return data;
}

// --batch BASE_URL: one job a line on stdin ({"id", "scenario", "model", "prompt", "options"}), run a few at
// a time in this one process (saves Node's start-up per call); one result line each, with its "id".
async function batch(baseURL, concurrency = 8) {
  const jobs = (await readStdin()).split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line));
  for (const job of jobs) {
    if (!SCENARIOS[job.scenario]) usage(`job ${job.id}: unknown scenario ${JSON.stringify(job.scenario)}`);
  }
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      emit({ id: job.id, ...(await runOne(job.scenario, baseURL, job.model, job.prompt, job.options)) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
}

// HTTPS_PROXY: fetch (openai-node's and the AI SDK's) goes through that proxy.
async function useProxyFromEnv() {
  const proxy = process.env.HTTPS_PROXY || process.env.https_proxy;
  if (!proxy) return;
  const { ProxyAgent, setGlobalDispatcher } = await import("undici");
  setGlobalDispatcher(new ProxyAgent(proxy));
}

async function main(argv) {
  globalThis.AI_SDK_LOG_WARNINGS = false; // the AI SDK's warnings about unsupported settings go to the console
  await useProxyFromEnv();
  if (argv[0] === "--batch") {
    if (!argv[1]) usage("--batch needs BASE_URL");
    return batch(argv[1]);
  }
  const [scenario, baseURL, model, prompt, optionsJson] = argv;
  if (!SCENARIOS[scenario]) usage(`unknown scenario ${JSON.stringify(scenario)}; one of ${Object.keys(SCENARIOS).join(", ")}`);
  if (!baseURL || !model || prompt == null) usage("BASE_URL, MODEL and PROMPT are required");
  emit(await runOne(scenario, baseURL, model, prompt, parseOptions(optionsJson)));
}

await main(process.argv.slice(2));
