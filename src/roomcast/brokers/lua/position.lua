-- The room's epoch and head (after sequence.lua); gives a new room its epoch.
local epoch, seq = current_stream()
return {epoch, seq}
