# A real Faye Bayeux server (Debian ruby-faye on thin) for edgebuf's downlink integration tests.
# Started by tools/faye/start, which reads the settings below from the environment:
#   EDGEBUF_FAYE_TIMEOUT   seconds Faye holds an idle /meta/connect (default 25)
#   EDGEBUF_FAYE_USER      login the handshake must present, e.g. t100/alice (unset: no check)
#   EDGEBUF_FAYE_PASSWORD  its password
# See tools/faye/README.md for what this server does on the wire.

require 'base64'
require 'json'
require 'multi_json'
require 'rack/utils'

# Debian's multi_json picks Oj, which writes floats with 16 or more significant digits as JSON
# strings. The json gem writes them as numbers.
MultiJson.use(:json_gem)

require 'faye'

MOUNT = '/notification/realtime'
TIMEOUT = Integer(ENV.fetch('EDGEBUF_FAYE_TIMEOUT', '25'))
DENIED = '403::Handshake denied'

# Handshake authentication as Cumulocity does it: HTTP Basic "tenant/user:password", or the
# extension ext["com.cumulocity.authn"]["token"] holding Base64("tenant/user:password").
# Only the handshake is checked; later messages are trusted by their clientId.
class HandshakeAuth
  def initialize(user, password)
    @expected = "#{user}:#{password}"
  end

  def incoming(message, request, callback)
    if message['channel'] == '/meta/handshake' && !authorised?(message, request)
      message['error'] = DENIED
    end
    callback.call(message)
  end

  # Faye advises reconnect "handshake" on every failed handshake; a denied login must not be
  # retried, so the answer says "none", as Cumulocity's does.
  def outgoing(message, _request, callback)
    if message['channel'] == '/meta/handshake' && message['error'] == DENIED
      message['advice'] = { 'reconnect' => 'none' }
    end
    callback.call(message)
  end

  private

  def authorised?(message, request)
    candidates = [basic_credentials(request), token_credentials(message)].compact
    candidates.any? { |given| Rack::Utils.secure_compare(given, @expected) }
  end

  def basic_credentials(request)
    header = request && request.env['HTTP_AUTHORIZATION']
    return nil unless header && header =~ /\ABasic\s+(\S+)\z/i
    decode(Regexp.last_match(1))
  end

  def token_credentials(message)
    ext = message['ext']
    authn = ext.is_a?(Hash) ? ext['com.cumulocity.authn'] : nil
    token = authn.is_a?(Hash) ? authn['token'] : nil
    token.is_a?(String) ? decode(token) : nil
  end

  def decode(text)
    Base64.strict_decode64(text).force_encoding('UTF-8')
  rescue ArgumentError
    nil
  end
end

# Everything outside the mount path: GET /health for the launcher's readiness poll.
fallback = lambda do |env|
  if env['PATH_INFO'] == '/health'
    [200, { 'Content-Type' => 'text/plain' }, ['ok']]
  else
    [404, { 'Content-Type' => 'text/plain' }, ['not found']]
  end
end

bayeux = Faye::RackAdapter.new(fallback, mount: MOUNT, timeout: TIMEOUT)
user = ENV['EDGEBUF_FAYE_USER']
bayeux.add_extension(HandshakeAuth.new(user, ENV.fetch('EDGEBUF_FAYE_PASSWORD', ''))) if user

run bayeux
