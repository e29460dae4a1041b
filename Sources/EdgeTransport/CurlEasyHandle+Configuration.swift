import CCurl

extension CurlEasyHandle {
    /// Options shared by request handles and the diagnostic TLS probe: how to reach the
    /// server (proxy, timeouts, keepalive) and the protocol floor. Certificate verification
    /// is set by the callers, because the probe is the one place that turns it off.
    func applyNetworkOptions(_ configuration: TransportConfiguration, protocols: String) throws(TransportError) {
        // Never raise SIGALRM/SIGPIPE: libcurl uses signals for DNS timeouts otherwise, which
        // is unsafe in a multi-threaded process (its threaded resolver honours timeouts anyway).
        try set(CURLOPT_NOSIGNAL, true)
        // Only these schemes may be fetched, even if a URL or a redirect says otherwise.
        try set(CURLOPT_PROTOCOLS_STR, protocols)
        try set(CURLOPT_REDIR_PROTOCOLS_STR, protocols)
        // No redirects: a 3xx is returned to the caller, never followed to another host.
        try set(CURLOPT_FOLLOWLOCATION, false)
        // HTTP/1.1 only: what the platforms document, one request per connection at a time.
        try set(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        // TLS 1.2 is the floor (CURL_SSLVERSION_TLSv1_2 is a minimum; TLS 1.3 is allowed).
        try set(CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2))

        if let proxy = configuration.proxy {
            // nil leaves libcurl's environment handling (https_proxy, no_proxy) in place;
            // "" explicitly disables any proxy.
            try set(CURLOPT_PROXY, proxy)
        }
        // HTTPS through a proxy always uses CONNECT; plain HTTP too, so a proxy never sees a
        // request line. The CONNECT answer's headers are not mixed into the response's.
        try set(CURLOPT_HTTPPROXYTUNNEL, true)
        try set(CURLOPT_SUPPRESS_CONNECT_HEADERS, true)
        // An HTTPS proxy's own certificate is verified as strictly as the server's.
        try set(CURLOPT_PROXY_SSL_VERIFYPEER, true)
        try set(CURLOPT_PROXY_SSL_VERIFYHOST, 2)

        try set(CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.curlMilliseconds)
        // Abort a stalled transfer: below lowSpeedLimit bytes/s for lowSpeedTime seconds.
        try set(CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimit)
        try set(CURLOPT_LOW_SPEED_TIME, configuration.lowSpeedTime.curlSeconds)
        // TCP keepalive keeps NAT/firewall state of the kept-alive connection warm and
        // detects a dead peer. (CURLOPT_TCP_KEEPCNT only exists from curl 8.9.)
        try set(CURLOPT_TCP_KEEPALIVE, true)
        try set(CURLOPT_TCP_KEEPIDLE, configuration.keepAliveIdle.curlSeconds)
        try set(CURLOPT_TCP_KEEPINTVL, configuration.keepAliveInterval.curlSeconds)
        // An empty cookie file name turns on libcurl's in-memory cookie engine (nothing is
        // read from or written to disk).
        if configuration.keepCookies { try set(CURLOPT_COOKIEFILE, "") }
    }
}
