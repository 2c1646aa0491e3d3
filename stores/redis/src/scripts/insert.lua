-- ARGV: data, now, key, envelope, px, at. 1 written, 0 present, -1 corrupt entry.
local key, env, px, at = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local set
if px == "" then
  set = redis.call("SET", data .. key, env, "NX")
else
  set = redis.call("SET", data .. key, env, "NX", "PX", px)
end
if not set then
  -- Redis still holds it: absent only if expired by the caller's clock.
  local state = decode(redis.call("GET", data .. key))
  if state == "live" then return 0 end
  if state == "corrupt" then return -1 end
  store(key, env, px, at)
end
indexed(key, px, at)
return 1
