-- Shared by every script: envelope decoding against the caller's clock (`now`, epoch ms),
-- and the writes that keep the two indexes in step with the data.
local now = tonumber(ARGV[2])
local data = ARGV[1]
local index, expiry = KEYS[1], KEYS[2]
-- "absent" | "live", value, expires_at (false if none) | "corrupt"
local function decode(raw)
  if not raw then return "absent" end
  local tag = string.byte(raw, 1)
  if tag == 0 then return "live", string.sub(raw, 2), false end
  if tag == 1 and #raw >= 9 then
    local at = 0
    for i = 2, 9 do at = at * 256 + string.byte(raw, i) end
    if at <= now then return "absent" end
    return "live", string.sub(raw, 10), at
  end
  return "corrupt"
end
local function store(key, env, px, at)
  if px == "" then
    redis.call("SET", data .. key, env)
  else
    redis.call("SET", data .. key, env, "PX", px)
  end
end
local function indexed(key, px, at)
  redis.call("ZADD", index, 0, key)
  if px == "" then redis.call("ZREM", expiry, key) else redis.call("ZADD", expiry, at, key) end
end
local function remove(key)
  redis.call("DEL", data .. key)
  redis.call("ZREM", index, key)
  redis.call("ZREM", expiry, key)
end
