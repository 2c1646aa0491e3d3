-- ARGV: data, now, key prefix, start (a ZRANGEBYLEX bound), limit.
-- {more, {k1, v1, k2, v2, ...}}, or {-1, {key}} for a corrupt entry.
local prefix, start, limit = ARGV[3], ARGV[4], tonumber(ARGV[5])
local chunk = math.min(limit + 1, 1000)
local out, n, more = {}, 0, 0
while true do
  local members = redis.call("ZRANGEBYLEX", index, start, "+", "LIMIT", 0, chunk)
  local stop = #members < chunk
  for _, key in ipairs(members) do
    if string.sub(key, 1, #prefix) ~= prefix then stop = true break end
    local state, value = decode(redis.call("GET", data .. key))
    if state == "corrupt" then return {-1, {key}} end
    if state == "live" then
      if n == limit then more = 1 stop = true break end
      n = n + 1
      out[2 * n - 1] = key
      out[2 * n] = value
    end
  end
  if stop then break end
  start = "(" .. members[#members]
end
return {more, out}
