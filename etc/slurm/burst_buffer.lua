--[[
ccat-data-transfer's burst-buffer script for Slurm 22.05 and later (BurstBufferType=burst_buffer/lua).

A batch job that says, before its first command,

    #BB_LUA ccat stage obs=obs-2026-0412,obs-2026-0413 location=ramses_processing

is held by Slurm (Reason=BurstBufferStageIn) while ccat stages the data, and starts once it is
there with CCAT_STAGED_DIR and CCAT_STAGING_REQUEST in its environment. When the job ends, the
request is released and the directory removed, unless the directive says `keep`. The directive
takes obs=, package=, instrument=, from=, to= (as `ccat stage request`), location= and keep.

Install it as burst_buffer.lua beside slurm.conf (make install puts a copy in
PREFIX/share/ccat/slurm/), with ccat_burst_buffer.conf beside it:

    ccat=/usr/local/bin/ccat                     # the ccat command
    CCAT_CONFIG=/etc/ccat/ccat.yaml              # any other KEY=value: environment for ccat
    CCAT_MUNGE_SOCKET=/run/munge/munge.socket.2

and burst_buffer.conf with `Flags=TeardownFailure` (so that a failed stage-in is cleaned up). These
functions run as SlurmUser, who needs a database login in ccat_scientist; the daemon stages for
a job only after Slurm confirms that the job is its owner's and carries this directive.

Slurm's contract (22.05): slurm_bb_job_process, slurm_bb_pools and slurm_bb_paths run inside
slurmctld and must return at once: they only read files. The others run in slurmscriptd and may
block: slurm_bb_setup (OtherTimeout) asks for the data, slurm_bb_data_in (StageInTimeout) waits for
it, slurm_bb_job_teardown (OtherTimeout) ends the request. Every function loads this file afresh.
--]]

local DIRECTIVE = "#BB_LUA"
local OPTIONS = { obs = "--obs", package = "--package", instrument = "--instrument", from = "--from", to = "--to" }
-- Values reach a shell (quoted) as SlurmUser, and ccat as option values: only these characters,
-- starting with a letter or digit (never an option of its own), are accepted.
local SAFE = "^[A-Za-z0-9][A-Za-z0-9_.,:/+-]*$"
local FORM = "the form is '#BB_LUA ccat stage obs=ID[,ID...] location=NAME [keep]'"

-- The settings in ccat_burst_buffer.conf beside this file.
local function settings()
    local source = debug.getinfo(1, "S").source
    local here = string.match(source, "^@(.*)/[^/]*$") or "."
    local found = { ccat = "/usr/local/bin/ccat", env = {} }
    local file = io.open(here .. "/ccat_burst_buffer.conf", "r")
    if file then
        for line in file:lines() do
            if not string.match(line, "^%s*#") then
                local key, value = string.match(line, "^%s*([%w_]+)%s*=%s*(.-)%s*$")
                if key == "ccat" then
                    found.ccat = value
                elseif key then
                    table.insert(found.env, key .. "=" .. value)
                end
            end
        end
        file:close()
    end
    return found
end

-- The job's ccat directive as ccat arguments, or nil and what is wrong with it. Like Slurm, only
-- the lines before the first command are read.
local function read_directive(job_script)
    local file, problem = io.open(job_script, "r")
    if not file then return nil, "cannot read the job script: " .. tostring(problem) end
    local found, err
    for line in file:lines() do
        if line ~= "" then
            if string.sub(line, 1, 1) ~= "#" then break end
            local words = {}
            for word in string.gmatch(line, "%S+") do table.insert(words, word) end
            if words[1] == DIRECTIVE and string.find(line, "%", 1, true) then
                -- Slurm would hand the stage-in functions a copy of the directives with % replaced.
                err = "'%' in a #BB_LUA line is not supported: " .. FORM
                break
            end
            if words[1] == DIRECTIVE and words[2] == "ccat" then
                if words[3] ~= "stage" then
                    err = "unknown ccat directive '" .. tostring(words[3]) .. "': " .. FORM
                    break
                end
                if found then
                    err = "more than one '#BB_LUA ccat stage' line: put the whole selection on one"
                    break
                end
                found = { keep = false, selection = {} }
                for i = 4, #words do
                    local word = words[i]
                    local key, value = string.match(word, "^([a-z]+)=(.*)$")
                    if word == "keep" then
                        found.keep = true
                    elseif not key or not (OPTIONS[key] or key == "location") then
                        err = "unknown '" .. word .. "' in the ccat directive: use obs=, package=, instrument=, from=, to=, location= and keep"
                    elseif not string.match(value, SAFE) then
                        err = key .. "= in the ccat directive must start with a letter or digit and hold only letters, digits and _ . , : / + -"
                    elseif key == "location" then
                        found.location = value
                    else
                        table.insert(found.selection, OPTIONS[key] .. "=" .. value)
                    end
                    if err then break end
                end
                if not err and #found.selection == 0 then err = "the ccat directive selects nothing: " .. FORM end
                if not err and not found.location then err = "the ccat directive names no location= (a PROCESSING location): " .. FORM end
                if err then break end
            end
        end
    end
    file:close()
    if err then return nil, err end
    if not found then return nil, "no '#BB_LUA ccat stage' line before the first command of the job script: " .. FORM end
    return found
end

local function quote(text)
    return "'" .. string.gsub(text, "'", "'\\''") .. "'"
end

-- Runs ccat with `arguments`; returns whether it exited 0, and its output (stdout and stderr).
local function ccat(arguments)
    local config = settings()
    local command = { "env" }
    for _, assignment in ipairs(config.env) do table.insert(command, quote(assignment)) end
    table.insert(command, quote(config.ccat))
    for _, argument in ipairs(arguments) do table.insert(command, quote(argument)) end
    local handle = io.popen(table.concat(command, " ") .. " </dev/null 2>&1; echo \"ccat-exit=$?\"")
    if not handle then return false, "cannot run " .. config.ccat end
    local output = handle:read("*a") or ""
    handle:close()
    local status = tonumber(string.match(output, "ccat%-exit=(%d+)%s*$"))
    output = string.gsub(output, "ccat%-exit=%d+%s*$", "")
    return status == 0, output
end

-- The last line ccat wrote: its error message.
local function last_line(output)
    local last = ""
    for line in string.gmatch(output, "[^\n]+") do last = line end
    return (string.gsub(last, "^[Ee]rror: ", ""))
end

-- Where data_in leaves the job's environment for slurm_bb_paths: the job's own directory in
-- StateSaveLocation (the job script's directory), which Slurm removes with the job.
local function environment_file(job_script)
    return (string.match(job_script, "^(.*)/[^/]*$") or ".") .. "/ccat-environment"
end

-- At submission (inside slurmctld): a directive ccat would refuse makes sbatch fail with the reason.
function slurm_bb_job_process(job_script)
    local _, problem = read_directive(job_script)
    if problem then return slurm.ERROR, problem end
    return slurm.SUCCESS
end

function slurm_bb_pools()
    return slurm.SUCCESS
end

-- Stage-in begins: ask for the data for the job's owner (asking again gives the same request).
function slurm_bb_setup(job_id, uid, gid, pool, bb_size, job_script)
    local directive, problem = read_directive(job_script)
    if not directive then return slurm.ERROR, problem end
    local arguments = { "stage", "request", "--slurm-job", job_id, "--for-uid", uid, "--location=" .. directive.location, "--json" }
    for _, argument in ipairs(directive.selection) do table.insert(arguments, argument) end
    if directive.keep then table.insert(arguments, "--keep") end
    local ok, output = ccat(arguments)
    if not ok then
        slurm.log_error("ccat: staging for job %s not requested: %s", job_id, output)
        return slurm.ERROR, "ccat: " .. last_line(output)
    end
    return slurm.SUCCESS
end

-- Waits until the data is staged (StageInTimeout), and keeps the job's environment for paths.
function slurm_bb_data_in(job_id, job_script)
    local ok, output = ccat({ "stage", "slurm-job", "wait", "--job", job_id })
    if not ok then
        slurm.log_error("ccat: staging for job %s failed: %s", job_id, output)
        return slurm.ERROR, "ccat: " .. last_line(output)
    end
    local lines = {}
    for line in string.gmatch(output, "[^\n]+") do
        if string.match(line, "^CCAT_STAGED_DIR=") or string.match(line, "^CCAT_STAGING_REQUEST=") then table.insert(lines, line) end
    end
    local file = io.open(environment_file(job_script), "w")
    if not file then return slurm.ERROR, "ccat: cannot keep the job's environment in " .. environment_file(job_script) end
    file:write(table.concat(lines, "\n") .. "\n")
    file:close()
    return slurm.SUCCESS
end

function slurm_bb_real_size(job_id)
    return slurm.SUCCESS
end

-- Inside slurmctld, as the job starts: copies the environment data_in kept. Never fails (a
-- failure here would hold the job for good).
function slurm_bb_paths(job_id, job_script, path_file)
    local source = io.open(environment_file(job_script), "r")
    if not source then return slurm.SUCCESS end
    local text = source:read("*a") or ""
    source:close()
    local target = io.open(path_file, "w")
    if target then
        for line in string.gmatch(text, "[^\n]+") do target:write(line .. "\n") end
        target:close()
    end
    return slurm.SUCCESS
end

function slurm_bb_pre_run(job_id, job_script)
    return slurm.SUCCESS
end

function slurm_bb_post_run(job_id, job_script)
    return slurm.SUCCESS
end

function slurm_bb_data_out(job_id, job_script)
    return slurm.SUCCESS
end

-- The job ended, was cancelled, or its stage-in failed: release (or cancel) its request. Works
-- from the job id alone, and again after a restart.
function slurm_bb_job_teardown(job_id, job_script, hurry)
    local ok, output = ccat({ "stage", "slurm-job", "end", "--job", job_id })
    if not ok then slurm.log_error("ccat: ending the staging request of job %s failed: %s", job_id, output) end
    os.remove(environment_file(job_script))
    return slurm.SUCCESS
end

function slurm_bb_get_status(...)
    return slurm.SUCCESS, "ccat: 'ccat stage list' shows staging requests, 'ccat stage status ID' one of them"
end
