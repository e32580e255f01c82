# frozen_string_literal: true

# Sidekiq worker class for the adopted-queue tests; load it with `sidekiq -r ./sidekiq_jobs.rb`.
#
#   DYNO=$JOBQUEUE_CONSUMER sidekiq -r ./sidekiq_jobs.rb -q default -c 1 -t 60
#
# Sidekiq names its process (the `hostname` in its `processes` entry) after DYNO when set,
# which is how the operator matches busy Sidekiq processes to the ones it started. TERM makes
# Sidekiq stop fetching and wait up to `-t` seconds for running jobs before it exits.

require "json"
require "sidekiq"

# redis-rb 4.8 warns about Redis 5 changes on every call Sidekiq 6.4 makes; not ours to fix.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# Appends one JSON line per event (start/end of a job, term of the process) to ADOPT_LOG (a single write on an O_APPEND file, so lines
# from concurrent workers never interleave).
module AdoptLog
  def self.event(event, job)
    path = ENV["ADOPT_LOG"]
    return if path.nil? || path.empty?

    worker = ENV["JOBQUEUE_CONSUMER"] || ENV["DYNO"] || ""
    line = JSON.generate(
      event: event, job: job, worker: worker, pid: Process.pid,
      t: Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond)
    )
    File.open(path, File::WRONLY | File::APPEND | File::CREAT, 0o644) do |f|
      f.syswrite("#{line}\n")
    end
  end
end

# TERM quiets Sidekiq first (no new job is fetched) and fires :quiet: the "term" line.
Sidekiq.configure_server do |config|
  config.on(:quiet) { AdoptLog.event("term", nil) }
end

# Sleeps the seconds given, logging start and end with the job id (jid).
class SleepJob
  include Sidekiq::Worker

  def perform(seconds)
    AdoptLog.event("start", jid)
    sleep(seconds.to_f)
    AdoptLog.event("end", jid)
  end
end

# Raises, to show Sidekiq's retry and dead sets.
class FailJob
  include Sidekiq::Worker
  sidekiq_options retry: 1

  def perform
    raise "failing on purpose"
  end
end
