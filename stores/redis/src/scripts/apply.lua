-- Puts and deletes, in order: ARGV[3..] in groups of five (op, key, envelope, px, at).
-- Returns how many deletes found an entry.
local found = 0
for i = 3, #ARGV, 5 do
  local key = ARGV[i + 1]
  if ARGV[i] == "p" then
    store(key, ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    indexed(key, ARGV[i + 3], ARGV[i + 4])
  else
    if decode(redis.call("GET", data .. key)) ~= "absent" then found = found + 1 end
    remove(key)
  end
end
return found
