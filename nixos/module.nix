# NixOS module for Circus.
#
#   imports = [ ./nixos/module.nix ];
#   services.circus = {
#     enable = true;
#     package = circus;                  # a build of this repository (bin/circus, share/circus)
#     roles = [ "server" "evaluator" ];  # a builder machine: [ "runner" ]
#     settings.server.host = "0.0.0.0";
#   };
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkEnableOption mkOption mkIf mkDefault types;

  cfg = config.services.circus;
  toml = pkgs.formats.toml { };
  stateDir = "/var/lib/circus";
  configFile = toml.generate "circus.toml" cfg.settings;
in
{
  options.services.circus = {
    enable = mkEnableOption "Circus, continuous integration for Nix projects";

    package = mkOption {
      type = types.package;
      description = ''
        The Circus package: `bin/circus`, and the SQL and web files in `share/circus`
        (read through CIRCUS_DATA_DIR).
      '';
    };

    roles = mkOption {
      type = types.listOf (types.enum [ "server" "evaluator" "runner" ]);
      default = [ "server" "evaluator" "runner" ];
      example = [ "runner" ];
      description = "The roles this machine runs, all in one process (`circus run --roles=...`).";
    };

    settings = mkOption {
      type = toml.type;
      default = { };
      example = {
        server.host = "0.0.0.0";
        queue_runner.workers = 8;
      };
      description = ''
        Circus configuration, rendered to TOML and passed as CIRCUS_CONFIG_FILE. See
        `etc/circus.example.toml` for every key. Secrets belong in files (`key_file`),
        not here: the rendered file is in the world-readable Nix store.
      '';
    };

    database.createLocally = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run PostgreSQL on this machine with a `circus` database owned by the `circus`
        user, reached over its Unix socket. Turn off and set `settings.database.url`
        to use another server.
      '';
    };
  };

  config = mkIf cfg.enable {
    services.circus.settings = {
      state_dir = mkDefault stateDir;
      database.url = mkIf cfg.database.createLocally (mkDefault "postgresql:///circus?host=/run/postgresql");
      evaluator.work_dir = mkDefault "${stateDir}/evaluator";
      queue_runner.work_dir = mkDefault "${stateDir}/runner";
      logs.log_dir = mkDefault "${stateDir}/logs";
      gc.gc_roots_dir = mkDefault "/nix/var/nix/gcroots/per-user/circus/circus-roots";
    };

    users.users.circus = {
      isSystemUser = true;
      group = "circus";
      home = stateDir;
      extraGroups = [ "nixbld" ];
    };
    users.groups.circus = { };

    # Builds go through the nix-daemon; trusted so the runner may set build options
    # and copy to and from remote builders.
    nix.settings.trusted-users = [ "circus" ];

    services.postgresql = mkIf cfg.database.createLocally {
      enable = true;
      ensureDatabases = [ "circus" ];
      ensureUsers = [{ name = "circus"; ensureDBOwnership = true; }];
    };

    systemd.tmpfiles.rules = [ "d /nix/var/nix/gcroots/per-user/circus 0755 circus circus -" ];

    systemd.services.circus = {
      description = "Circus continuous integration (${lib.concatStringsSep ", " cfg.roles})";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" "nix-daemon.service" ]
        ++ lib.optional cfg.database.createLocally "postgresql.service";
      requires = lib.optional cfg.database.createLocally "postgresql.service";
      path = [ config.nix.package pkgs.git pkgs.openssh ];
      environment = {
        CIRCUS_CONFIG_FILE = "${configFile}";
        CIRCUS_DATA_DIR = "${cfg.package}/share/circus";
        CIRCUS_STATE_DIR = stateDir;
      };
      serviceConfig = {
        Type = "exec";
        ExecStart = "${cfg.package}/bin/circus run --roles=${lib.concatStringsSep "," cfg.roles}";
        User = "circus";
        Group = "circus";
        StateDirectory = "circus";
        WorkingDirectory = stateDir;
        # SIGTERM to the main process only: running builds get shutdown_grace to finish.
        KillMode = "mixed";
        TimeoutStopSec = 90;
        Restart = "on-failure";
        RestartSec = 5;
      };
    };
  };
}
