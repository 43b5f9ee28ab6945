-- touch: no arguments of its own. Reply: {'touched'}
local denied = guard()
if denied then return denied end
return done({'touched'})
