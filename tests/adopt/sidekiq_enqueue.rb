# frozen_string_literal: true

# Enqueues N jobs of S seconds with Sidekiq's own client (`perform_async`); prints the jids.
#
#   REDIS_URL=redis://127.0.0.1:PORT ruby sidekiq_enqueue.rb --queue default --count 24 --seconds 1
#
# `--in SECONDS` schedules them (`perform_in`); `--fail` enqueues jobs that raise.

require "optparse"
require_relative "sidekiq_jobs"

opts = { queue: "default", count: 1, seconds: 1.0, in: 0.0, fail: false }
OptionParser.new do |o|
  o.on("--queue NAME") { |v| opts[:queue] = v }
  o.on("--count N", Integer) { |v| opts[:count] = v }
  o.on("--seconds S", Float) { |v| opts[:seconds] = v }
  o.on("--in S", Float) { |v| opts[:in] = v }
  o.on("--fail") { opts[:fail] = true }
end.parse!

opts[:count].times do
  jid =
    if opts[:fail]
      FailJob.set(queue: opts[:queue]).perform_async
    elsif opts[:in].positive?
      SleepJob.set(queue: opts[:queue]).perform_in(opts[:in], opts[:seconds])
    else
      SleepJob.set(queue: opts[:queue]).perform_async(opts[:seconds])
    end
  puts jid
end
$stdout.flush
