-- A protected GET that cycles through many tokens ($BENCH_TOKEN_FILE, one per
-- line; each thread starts at its own offset), as a bearer header or, with
-- BENCH_COOKIE=1, as the browser session's cookie.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKEN_FILE")) do
   if #line > 0 then tokens[#tokens + 1] = line end
end
local cookie = os.getenv("BENCH_COOKIE") == "1"
local next = 0

function init(args)
   next = math.random(#tokens)
end

function request()
   next = next % #tokens + 1
   local headers = cookie and { Cookie = "__Host-access=" .. tokens[next] }
      or { Authorization = "Bearer " .. tokens[next] }
   return wrk.format("GET", nil, headers)
end
