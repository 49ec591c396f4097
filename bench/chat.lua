-- bench/chat.lua - wrk script: POSTs a realistic ~1.4 KB OpenAI chat request.
--
--   wrk ... URL -- json|sse
--
-- "json" asks model bench-json without streaming, "sse" asks model bench-sse with
-- "stream": true. The path comes from URL (direct and nginx: /json/v1/... or /sse/v1/...;
-- switchyard: /v1/chat/completions, where the model picks the upstream path).
-- done() prints one line "BENCH_RESULT {json}" for run.sh to parse.

local mode = "json"

local function json_str(s)
   s = s:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('\n', '\\n')
   return '"' .. s .. '"'
end

local function build_body(m)
   local system = "You are Ledger, the support assistant of Northwind Outfitters, an online " ..
      "retailer of outdoor gear. Answer in the customer's language, be concise and friendly, " ..
      "and never invent order details: if you need an order number, ask for it. You may " ..
      "explain return rules (30 days, unused items, original packaging; sale items are " ..
      "final), shipping times (2-4 business days in the EU, 5-9 elsewhere) and warranty " ..
      "terms (2 years on all tents and backpacks)."
   local turns = {
      {"user", "Hi! I bought the Ridgeline 2 tent three weeks ago and one of the poles " ..
               "cracked on the second night. Can I still return it?"},
      {"assistant", "I'm sorry to hear that! A cracked pole after two nights is covered by " ..
                    "our 2-year warranty, so you don't need to use the 30-day return. " ..
                    "Could you share your order number so I can start a warranty claim?"},
      {"user", "Sure, it's NW-4471-2298. Will you send a new pole or the whole tent? We " ..
               "leave for a trip in ten days, so timing matters a lot to us."},
      {"assistant", "Thanks! For a single cracked pole we usually ship a replacement pole " ..
                    "section within 2-4 business days in the EU."},
      {"user", "A replacement pole is fine. Can you also tell me whether the footprint " ..
               "for this tent is in stock, and what the total would be with shipping?"},
   }
   local msgs = { '{"role":"system","content":' .. json_str(system) .. '}' }
   for _, t in ipairs(turns) do
      msgs[#msgs + 1] = '{"role":"' .. t[1] .. '","content":' .. json_str(t[2]) .. '}'
   end
   local model = (m == "sse") and "bench-sse" or "bench-json"
   local body = '{"model":"' .. model .. '","messages":[' .. table.concat(msgs, ",") ..
      '],"temperature":0.2,"max_tokens":256,"user":"bench-user-42"'
   if m == "sse" then body = body .. ',"stream":true' end
   return body .. '}'
end

function init(args)
   if args[1] == "sse" or args[1] == "json" then mode = args[1] end
   wrk.method = "POST"
   wrk.body = build_body(mode)
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer sk-bench-not-a-real-key"
   if mode == "sse" then wrk.headers["Accept"] = "text/event-stream" end
   req = wrk.format()
end

function request()
   return req
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"rps":%.1f,"bytes":%d,' ..
      '"lat_mean_us":%.1f,"lat_min_us":%d,"lat_max_us":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
      summary.requests, summary.duration, summary.requests / secs, summary.bytes,
      latency.mean, latency.min, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9),
      e.connect, e.read, e.write, e.status, e.timeout))
end
