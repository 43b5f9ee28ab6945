-- admit_all: ARGV 3 now.
-- Reply: {'admitted', {admitted ids}, {still waiting ids}, participant_count,
--         {the admitted users' seat numbers}}
local denied = guard()
if denied then return denied end
local admitted, waiting, count, seats = admit_in_order(ARGV[3], false)
return done({'admitted', admitted, waiting, count, seats})
