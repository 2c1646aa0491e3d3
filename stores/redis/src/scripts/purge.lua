-- ARGV: data, now, chunk. Drops expired keys (data and both indexes) found through the
-- expiry index. {removed, looked at}.
local members = redis.call("ZRANGEBYSCORE", expiry, "-inf", now, "LIMIT", 0, tonumber(ARGV[3]))
local removed = 0
for _, key in ipairs(members) do
  local state, _, at = decode(redis.call("GET", data .. key))
  if state == "live" then
    -- Rewritten since it was indexed: index its current expiry.
    if at then redis.call("ZADD", expiry, at, key) else redis.call("ZREM", expiry, key) end
  elseif state == "corrupt" then
    redis.call("ZREM", expiry, key)
  else
    remove(key)
    removed = removed + 1
  end
end
return {removed, #members}
