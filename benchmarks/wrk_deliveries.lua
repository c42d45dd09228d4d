-- Each wrk thread replays its own share of pre-signed deliveries (one "signature<TAB>body"
-- per line), so every request is a distinct event the receiver must make durable.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, stride = args[1], tonumber(args[2])
  requests, index = {}, 1
  local n = 0
  for line in io.lines(path) do
    if n % stride == id then
      local sig, body = line:match("([^\t]+)\t(.*)")
      requests[#requests + 1] = wrk.format("POST", "/webhooks/ghl",
        {["Content-Type"] = "application/json", ["x-ghl-signature"] = sig}, body)
    end
    n = n + 1
  end
end

function request()
  local r = requests[index]
  index = index % #requests + 1
  return r
end
