-- Refresh rotation: every token is good once, so each thread keeps a pool of
-- live refresh tokens (from $BENCH_REFRESH_FILE, one per line, split among
-- the threads), takes one per request and puts back the successor from the
-- response. A thread has at least as many tokens as connections, so no
-- request ever goes out without a live token.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local all = {}
for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
   if #line > 0 then all[#all + 1] = line end
end
local threads = {}

function setup(thread)
   local index = #threads
   threads[#threads + 1] = thread
   local mine = {}
   for i = index + 1, #all, tonumber(os.getenv("BENCH_THREADS")) do mine[#mine + 1] = all[i] end
   thread:set("tokens", table.concat(mine, ","))
end

local pool = {}

function init(args)
   for token in string.gmatch(tokens, "[^,]+") do pool[#pool + 1] = token end
end

function request()
   local token = table.remove(pool) or "exhausted"
   return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, '{"refresh":"' .. token .. '"}')
end

function response(status, headers, body)
   local successor = body and string.match(body, '"refresh"%s*:%s*"([^"]+)"')
   if status == 200 and successor then pool[#pool + 1] = successor end
end
