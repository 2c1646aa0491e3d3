-- ARGV: data, now, key, has_expected, expected, has_new, envelope, px, at.
-- {1, nil} swapped, {0, current or nil} conflict, {-1, nil} corrupt entry.
local key = ARGV[3]
local state, current = decode(redis.call("GET", data .. key))
if state == "corrupt" then return {-1, false} end
local matches
if ARGV[4] == "1" then
  matches = state == "live" and current == ARGV[5]
else
  matches = state == "absent"
end
if not matches then
  if state == "live" then return {0, current} end
  return {0, false}
end
if ARGV[6] == "1" then
  store(key, ARGV[7], ARGV[8], ARGV[9])
  indexed(key, ARGV[8], ARGV[9])
else
  remove(key)
end
return {1, false}
